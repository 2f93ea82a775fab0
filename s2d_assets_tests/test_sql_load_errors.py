"""A broken SQL model fails when the definitions load, and the message names its file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dagster import Definitions

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.sql.models import SqlModelError, discover_models, load_models
from s2d_assets_tests.conftest import tiny_experiment_data


def load(tmp_path: Path, sql_folder: Path) -> Definitions:
    path = tmp_path / "e.yaml"
    experiment = parse_experiment(tiny_experiment_data(tmp_path), path)
    return build_definitions(experiment, path, StatePaths(tmp_path / "state"), sql_folder=sql_folder)


def write(folder: Path, relative: str, sql: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


def test_good_models_load(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "kept.sql", "SELECT * FROM curated_pool WHERE kept")
    write(folder, "reports/kept_count.sql", "SELECT count(*) AS n FROM main.kept")
    keys = {"/".join(k.path[1:]) for k in load(tmp_path, folder).resolve_asset_graph().get_all_asset_keys()}
    assert {"main/kept", "reports/kept_count"} <= keys


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "fine.sql", "SELECT 1 AS x")
    bad = write(
        folder, "reports/broken_model.sql", "-- materialized: table\nSELECT task,, count(*) FROM curated_pool\n"
    )
    with pytest.raises(SqlModelError, match="does not parse") as error:
        load(tmp_path, folder)
    assert str(error.value).startswith(str(bad))
    assert "broken_model.sql" in str(error.value)


def test_unknown_table_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "fine.sql", "SELECT * FROM evaluations")
    bad = write(folder, "reports/typo_model.sql", "SELECT * FROM curated_pools JOIN fine USING (task)")
    with pytest.raises(SqlModelError, match="references table curated_pools, which no asset produces") as error:
        load(tmp_path, folder)
    assert str(error.value).startswith(str(bad))


def test_model_of_another_schema_needs_its_schema(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "a/base.sql", "SELECT 1 AS x")
    bad = write(folder, "b/uses_base.sql", "SELECT * FROM base")  # DuckDB would not find a.base either
    with pytest.raises(SqlModelError, match="references table base") as error:
        load(tmp_path, folder)
    assert str(error.value).startswith(str(bad))


def test_cycle_names_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "loop/first_model.sql", "SELECT * FROM second_model")
    write(folder, "loop/second_model.sql", "SELECT * FROM loop.third_model")
    write(folder, "loop/third_model.sql", "WITH x AS (SELECT * FROM first_model) SELECT * FROM x")
    with pytest.raises(SqlModelError, match="cycle between SQL models") as error:
        load(tmp_path, folder)
    message = str(error.value)
    assert "loop.first_model -> loop.second_model -> loop.third_model -> loop.first_model" in message
    for name in ("first_model.sql", "second_model.sql", "third_model.sql"):
        assert name in message


def test_self_reference_is_a_cycle(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "stats/inputs.sql", "SELECT * FROM inputs")  # means stats.inputs itself, as in DuckDB
    with pytest.raises(SqlModelError, match=r"inputs\.sql: cycle between SQL models: stats\.inputs -> stats\.inputs"):
        load(tmp_path, folder)


def test_other_load_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "kind.sql": ("-- materialized: incremental\nSELECT 1", "materialized must be 'view' or 'table'"),
        "two.sql": ("SELECT 1; SELECT 2", "exactly one SELECT query"),
        "write.sql": ("INSERT INTO inputs SELECT * FROM inputs", "one SELECT query, not INSERT"),
        "empty.sql": ("-- nothing here\n", "holds no query"),
        "Bad-Name.sql": ("SELECT 1", "model name (file name) 'Bad-Name'"),
        "inputs.sql": ("SELECT 1", "would replace the pipeline's table inputs"),
        "deep/er/model.sql": ("SELECT 1", "one sub-folder"),
    }
    for relative, (sql, expected) in cases.items():
        folder = tmp_path / relative.replace("/", "_").replace(".sql", "")
        path = write(folder, relative, sql)
        with pytest.raises(SqlModelError, match=re.escape(expected)) as error:
            load_models(folder, {"inputs", "curated_pool"})
        assert str(error.value).startswith(str(path)), relative


def test_duplicate_schema_main_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    write(folder, "pool.sql", "SELECT 1 AS x")
    second = write(folder, "main/pool.sql", "SELECT 2 AS x")
    with pytest.raises(SqlModelError, match=r"main\.pool is also defined by") as error:
        load_models(folder, set())
    assert str(second) in str(error.value)


def test_missing_folder_means_no_models(tmp_path: Path) -> None:
    assert discover_models(tmp_path / "absent") == []
