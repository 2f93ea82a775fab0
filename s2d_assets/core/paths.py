"""The project root, and the project-local state folder: warehouse, Dagster home, models, checkpoints, inbox.

It lives at ``$S2D_STATE`` or ``<project>/.s2d`` (git-ignored). CLI runs and ``dagster dev``
share its ``DAGSTER_HOME``, so materialisation history and staleness survive between commands.
Every path s2d writes is built here and proven to lie inside the state folder (``inside``); the
Dagster instance file in its ``dagster_home`` is written by ``defs/instance.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from s2d_assets.core.errors import StateError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: experiments/, dbt_like_sql/, docs/


def resolve_path(value: str) -> Path:
    """A relative path is taken from the working directory, else from the project root."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return PROJECT_ROOT / path


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def warehouse(self) -> Path:
        return self.inside(self.root / "warehouse.duckdb")

    @property
    def models(self) -> Path:
        return self.inside(self.root / "models")

    @property
    def checkpoints(self) -> Path:
        return self.inside(self.root / "checkpoints")

    def checkpoint(self, experiment: str, *parts: str) -> Path:
        """The one place a checkpoint folder is named: ``checkpoints/<experiment>/<task>/<method>``."""
        return self.inside(self.checkpoints / experiment / Path(*parts))

    def inside(self, path: Path) -> Path:
        """``path``, proven to lie inside the state folder (names come from user files; links are followed)."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise StateError(f"{path}: refusing to write outside the state folder {self.root} (it leads to {resolved})")
        return path

    @property
    def dagster_home(self) -> Path:
        return self.inside(self.root / "dagster_home")

    @property
    def inbox(self) -> Path:
        return self.inside(self.root / "inbox")

    @property
    def ray_staging(self) -> Path:
        """Request and result Parquet files of Ray generation jobs (``engine.executor: ray``)."""
        return self.inside(self.root / "ray")


def state_paths() -> StatePaths:
    return StatePaths(Path(os.environ.get("S2D_STATE") or PROJECT_ROOT / ".s2d").resolve())
