"""The project-local state folder: warehouse, Dagster home, models, checkpoints, inbox.

It lives at ``$S2D_STATE`` or ``<project>/.s2d`` (git-ignored). CLI runs and ``dagster dev``
share its ``DAGSTER_HOME``, so materialisation history and staleness survive between commands.
Every path s2d writes is built here and proven to lie inside the state folder (``inside``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from s2d_assets.config.experiment import PROJECT_ROOT
from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import StateError

DAGSTER_YAML_HEADER = "# Written by s2d."
# Seconds after a run ends (or is marked failed) before the daemon frees pool slots it still holds.
FREE_SLOTS_AFTER_RUN_END_SECONDS = 60
DAGSTER_YAML = f"""\
{DAGSTER_YAML_HEADER} DuckDB allows one writer per file: every asset that writes the warehouse
# runs in the `duckdb_writer` pool, and pools default to one step at a time. Run monitoring frees
# the pool slots of runs that died (the daemon runs with `s2d ui` / `dagster dev`; the `s2d`
# command itself marks its own dead runs failed and frees their slots before each run).
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: {FREE_SLOTS_AFTER_RUN_END_SECONDS}
# Declarative automation: the daemon evaluates the automation condition sensor (`s2d_automation`),
# which observes the sources on the refresh cron and materialises what its conditions ask for.
auto_materialize:
  enabled: true
  use_sensors: true
telemetry:
  enabled: false
"""


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


def ensure_dagster_home(paths: StatePaths | None = None) -> Path:
    """Create the persistent DAGSTER_HOME (with its dagster.yaml) and point the environment at it.

    The dagster.yaml is s2d's while it starts with s2d's header: one written by an older s2d (no
    ``run_monitoring``) is rewritten. One that is not a YAML mapping is refused with the fix.
    """
    paths = paths or state_paths()
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        atomic_write_text(config, DAGSTER_YAML)
    else:
        check_dagster_yaml(config)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    return home


def check_dagster_yaml(config: Path) -> None:
    """Upgrade an s2d-written dagster.yaml that lacks run monitoring or automation; refuse one that does not parse."""
    fix = f"delete it and s2d writes a fresh one (the run history next to it is kept): rm {config}"
    try:
        text = config.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        problem = getattr(error, "problem", None) or type(error).__name__
        raise StateError(f"{config}: not a valid Dagster instance file ({problem}); {fix}") from None
    if not isinstance(data, dict):
        raise StateError(f"{config}: empty or truncated Dagster instance file (not a mapping); {fix}")
    ours = text.startswith(DAGSTER_YAML_HEADER)
    monitoring = data.get("run_monitoring") or {}
    if ours and ("free_slots_after_run_end_seconds" not in monitoring or "auto_materialize" not in data):
        atomic_write_text(config, DAGSTER_YAML)
