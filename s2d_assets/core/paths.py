"""The project-local state folder: warehouse, Dagster home, models, checkpoints, inbox.

It lives at ``$S2D_STATE`` or ``<project>/.s2d`` (git-ignored). CLI runs and ``dagster dev``
share its ``DAGSTER_HOME``, so materialisation history and staleness survive between commands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from s2d_assets.config.experiment import PROJECT_ROOT

DAGSTER_YAML = """\
# Written by s2d. DuckDB allows one writer per file: every asset that writes the warehouse
# runs in the `duckdb_writer` pool, and pools default to one step at a time.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, experiment: str, *parts: str) -> Path:
        """The one place a checkpoint folder is named: ``checkpoints/<experiment>/<task>/<method>``."""
        return self.inside(self.checkpoints / experiment / Path(*parts))

    def inside(self, path: Path) -> Path:
        """``path``, proven to lie inside the state folder (names come from user files)."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError(f"{path}: refusing to write outside the state folder {self.root}")
        return path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"


def state_paths() -> StatePaths:
    return StatePaths(Path(os.environ.get("S2D_STATE") or PROJECT_ROOT / ".s2d").resolve())


def ensure_dagster_home(paths: StatePaths | None = None) -> Path:
    """Create the persistent DAGSTER_HOME (with its dagster.yaml) and point the environment at it."""
    paths = paths or state_paths()
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    return home
