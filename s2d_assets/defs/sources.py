"""Every file a task reads, as an observable source asset: ``<experiment>/<task>/source_<name>``.

Observing a source records its data version (a hash of the file's bytes, ``<package>==<version>``
for packaged data, a hash of the inbox folder's files; ``tasks/sources.py``). The task's
``raw_inputs`` depends on its sources, so Dagster records the data versions it read at each
materialisation, and a file edited in place makes exactly that task's inputs, and what follows
them, stale. Sources are observed by ``s2d run`` and ``s2d refresh`` before anything else, on
the experiment's refresh cron by the automation sensor, and (the inbox) by the inbox sensor.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetKey,
    AutomationCondition,
    BetaWarning,
    DataVersion,
    MetadataValue,
    ObserveResult,
    SourceAsset,
    observable_source_asset,
)

from s2d_assets.defs.common import experiment_key, task_key
from s2d_assets.distill.context import StageContext
from s2d_assets.tasks.sources import INBOX, Source, all_sources, coconut_sources

SOURCE_PREFIX = "source_"
INBOX_SOURCE = SOURCE_PREFIX + INBOX
COCONUT_GROUP = "coconut"  # the Coconut assets' group and the method part of their keys


def source_key(experiment: str, task: str, name: str) -> AssetKey:
    return task_key(experiment, task, SOURCE_PREFIX + name)


def is_source_key(key: AssetKey) -> bool:
    return key.path[-1].startswith(SOURCE_PREFIX)


def observation(source: Source) -> ObserveResult:
    metadata = {
        name: MetadataValue.path(value) if name == "path" else value for name, value in source.metadata().items()
    }
    return ObserveResult(data_version=DataVersion(source.data_version()), metadata=metadata)


def source_asset(key: AssetKey, group: str, source: Source, condition: AutomationCondition | None) -> SourceAsset:
    with warnings.catch_warnings():  # observable source assets are public, marked beta
        warnings.simplefilter("ignore", BetaWarning)

        @observable_source_asset(
            key=key,
            group_name=group,
            description=source.description,
            automation_condition=condition,
        )
        def _observe() -> ObserveResult:
            return observation(source)

    return _observe


def experiment_sources(ctx: StageContext) -> list[tuple[AssetKey, str, Source]]:
    """(key, group, source) of everything the experiment's tasks read: files, data packages, inboxes."""
    experiment = ctx.experiment
    found = [
        (source_key(experiment.name, task, source.name), task, source)
        for task, spec in experiment.tasks.items()
        for source in all_sources(spec, ctx.paths.inbox, task)
    ]
    if experiment.coconut is not None:
        task = experiment.coconut.task_name
        found += [
            (experiment_key(experiment.name, task, COCONUT_GROUP, SOURCE_PREFIX + source.name), COCONUT_GROUP, source)
            for source in coconut_sources()
        ]
    return found


def source_versions(ctx: StageContext) -> dict[AssetKey, str]:
    """Every source's data version, computed here without recording anything (``s2d refresh --dry-run``)."""
    return {key: source.data_version() for key, _, source in experiment_sources(ctx)}


def source_assets(ctx: StageContext, condition: AutomationCondition | None = None) -> list[SourceAsset]:
    """One observable source asset per source of the experiment."""
    return [source_asset(key, group, source, condition) for key, group, source in experiment_sources(ctx)]
