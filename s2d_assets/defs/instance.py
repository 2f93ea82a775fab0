"""The Dagster instance file (``<state>/dagster_home/dagster.yaml``): written by s2d, checked before use.

No Dagster import: the CLI writes it before any Dagster code loads.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import StateError
from s2d_assets.core.paths import StatePaths, state_paths

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
