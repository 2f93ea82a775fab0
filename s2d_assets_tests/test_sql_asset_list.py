"""The Dagster CLI lists every shipped SQL model as an asset of the project's definitions.

`dagster asset list` takes no workspace file (`-w`); it loads the module that workspace.yaml names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from s2d_assets.core.paths import PROJECT_ROOT
from s2d_assets.defs.sql_models import SQL_FOLDER
from s2d_assets.defs.tables import WAREHOUSE_TABLES
from s2d_assets.sql.models import load_models


def test_dagster_asset_list_shows_every_sql_model(tmp_path: Path) -> None:
    # every key carries the experiment it belongs to (the default experiment is named "default")
    expected = {
        "default/" + resolved.model.relation.replace(".", "/") for resolved in load_models(SQL_FOLDER, WAREHOUSE_TABLES)
    }
    assert len(expected) >= 5
    module = (PROJECT_ROOT / "workspace.yaml").read_text().split("module_name:")[1].split()[0]
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "S2D_STATE": str(tmp_path / "state"), "DAGSTER_HOME": str(tmp_path / "home")}
    env.pop("S2D_EXPERIMENT", None)
    (tmp_path / "home").mkdir()
    listed = subprocess.run(
        [str(dagster), "asset", "list", "-m", module],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout.split()
    assert expected <= set(listed)
    assert "default/base_model" in listed
