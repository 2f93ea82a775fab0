"""Asset keys and turning a stage's result into what Dagster records."""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, DataVersion, MaterializeResult, MetadataValue

from s2d_assets.core.stage_result import StageResult

WRITER_POOL = "duckdb_writer"


def experiment_key(experiment: str, *parts: str) -> AssetKey:
    """The one place asset keys are built: every key starts with the experiment's name, so experiments
    materialised into one Dagster instance keep separate histories."""
    return AssetKey([experiment, *parts])


def stage_key(experiment: str, task: str, method: str | None, stage: str) -> AssetKey:
    """A stage of the paper: ``<experiment>/<task>[/<method>]/<stage>``."""
    return experiment_key(experiment, *([task, method, stage] if method else [task, stage]))


def task_key(experiment: str, task: str, stage: str) -> AssetKey:
    return stage_key(experiment, task, None, stage)


def method_key(experiment: str, task: str, method: str, stage: str) -> AssetKey:
    return stage_key(experiment, task, method, stage)


def to_materialization(result: StageResult, extra: dict[str, Any] | None = None) -> MaterializeResult:
    metadata: dict[str, Any] = {}
    for key, value in {**result.metadata, **(extra or {})}.items():
        if key == "path":
            metadata[key] = MetadataValue.path(str(value))
        elif key in ("rows", "inputs", "examples"):
            metadata["dagster/row_count"] = int(value)
            metadata[key] = value
        else:
            metadata[key] = value
    for key, text in result.markdown.items():
        metadata[key] = MetadataValue.md(text)
    return MaterializeResult(metadata=metadata, data_version=DataVersion(result.data_version))
