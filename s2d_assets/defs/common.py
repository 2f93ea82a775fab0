"""Asset keys and turning a stage's result into what Dagster records."""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, DagsterInstance, DataVersion, MaterializeResult, MetadataValue

from s2d_assets.core.stage_result import StageResult

WRITER_POOL = "duckdb_writer"
TABLES_METADATA = "s2d/tables"  # an asset's definition metadata: the warehouse tables it writes

# The tags Dagster writes on every materialisation and observation of a versioned asset (documented
# under "data versioning"; the constants themselves are not exported by the public ``dagster`` module).
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_DATA_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_EVENT_POINTER_PREFIX = "dagster/input_event_pointer/"


def experiment_key(experiment: str, *parts: str) -> AssetKey:
    """The one place asset keys are built: every key starts with the experiment's name, so experiments
    materialised into one Dagster instance keep separate histories."""
    return AssetKey([experiment, *parts])


def stage_key(experiment: str, task: str, method: str | None, stage: str) -> AssetKey:
    """A stage of the paper: ``<experiment>/<task>[/<method>]/<stage>``."""
    return experiment_key(experiment, *([task, method, stage] if method else [task, stage]))


def task_key(experiment: str, task: str, stage: str) -> AssetKey:
    return stage_key(experiment, task, None, stage)


def latest_observed_version(instance: DagsterInstance, key: AssetKey) -> str | None:
    """The data version of a source asset's latest observation (``None`` before the first)."""
    records = instance.fetch_observations(key, limit=1).records
    if not records:
        return None
    observation = records[0].event_log_entry.asset_observation
    return (observation.tags or {}).get(DATA_VERSION_TAG) if observation else None


def latest_materialized_version(instance: DagsterInstance, key: AssetKey) -> str | None:
    event = instance.get_latest_materialization_event(key)
    materialization = event.asset_materialization if event else None
    return (materialization.tags or {}).get(DATA_VERSION_TAG) if materialization else None


def to_materialization(result: StageResult, extra: dict[str, Any] | None = None) -> MaterializeResult:
    metadata: dict[str, Any] = {}
    for key, value in {**result.metadata, **(extra or {})}.items():
        if key == "path":
            metadata[key] = MetadataValue.path(str(value))
        elif key in ("rows", "inputs", "examples"):
            metadata["dagster/row_count"] = int(value)
            metadata[key] = value
        elif isinstance(value, list | dict):  # e.g. the training log: loss and learning rate per step
            metadata[key] = MetadataValue.json(value)
        else:
            metadata[key] = value
    for key, text in result.markdown.items():
        metadata[key] = MetadataValue.md(text)
    return MaterializeResult(metadata=metadata, data_version=DataVersion(result.data_version))
