"""Jobs, declarative automation (conditions and the automation sensor) and the inbox sensor.

What runs on its own is declared on the assets, through Dagster's public automation conditions,
and evaluated by one ``AutomationConditionSensorDefinition`` (``s2d_automation``):

- sources are observed on the experiment's refresh cron (``schedule.refresh_cron``);
- inputs, curation, the distillation set, training, evaluation and the SQL models are *eager*:
  materialised when missing or when an upstream asset was updated, and when their code version
  (what the experiment file says about them) changed;
- the generation stages, where the LLM cost is, run when missing, and otherwise at most once per
  cron period: from the cron tick on, once an upstream asset or their code version changed.

An observation that finds the same data version updates nothing, so an unchanged file costs
nothing downstream. The sensor runs while ``s2d ui`` / ``dagster dev`` (the daemon) is up; it
starts running unless ``S2D_AUTOMATION=stopped`` (then turn it on under *Automation* in the UI).
``s2d refresh`` is the same thing on demand: observe, then materialise the stale closure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import partial

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from s2d_assets.config.experiment import Experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.common import DATA_VERSION_TAG, latest_observed_version
from s2d_assets.tasks import build_task
from s2d_assets.tasks.base import prompt_meta
from s2d_assets.tasks.inbox import InboxError, inbox_files, listing_stamp, read_inbox_file, reject
from s2d_assets.tasks.sources import inbox_version

MATERIALIZE_ALL = "materialize_all"
REFRESH = "refresh"
OBSERVE_SOURCES = "observe_sources"
AUTOMATION_SENSOR = "s2d_automation"
INBOX_SENSOR = "inbox_sensor"
AUTOMATION_ENV = "S2D_AUTOMATION"  # "stopped": the sensors start stopped (turn them on in the UI)
AUTOMATION_INTERVAL_SECONDS = 30


def jobs(source_keys: Sequence[AssetKey]) -> list:  # type: ignore[type-arg]
    sources = AssetSelection.keys(*source_keys)
    return [
        define_asset_job(
            MATERIALIZE_ALL,
            selection=AssetSelection.all() | sources,
            description="Observe every source, then materialise every stage.",
        ),
        # Launched with the stale closure as its asset selection (by `s2d refresh`).
        define_asset_job(
            REFRESH, selection=AssetSelection.all(), description="Materialise what is stale or missing, and downstream."
        ),
        define_asset_job(
            OBSERVE_SOURCES, selection=sources, description="Observe every file the tasks read (their data versions)."
        ),
    ]


# -- conditions --------------------------------------------------------------------------------------


def observe_on_cron(cron: str) -> AutomationCondition:
    """Sources: observed once per tick of the refresh cron."""
    return AutomationCondition.cron_tick_passed(cron).since_last_handled().with_label(f"observe on cron ({cron})")


def eager_or_code_changed() -> AutomationCondition:
    """Cheap derived stages: as soon as an upstream asset is updated, or what shapes them changed."""
    return (AutomationCondition.eager() | AutomationCondition.code_version_changed()).with_label(
        "eager or code version changed"
    )


def missing_or_on_cron_when_changed(cron: str) -> AutomationCondition:
    """Generation stages: when missing; else from the cron tick on, once an input or the code changed."""
    changed = (AutomationCondition.any_deps_updated() | AutomationCondition.code_version_changed()).since_last_handled()
    on_cron = (
        AutomationCondition.cron_tick_passed(cron).since_last_handled()
        & changed
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label(f"on cron ({cron}) when changed")
    return (AutomationCondition.on_missing() | on_cron).with_label(f"on missing or on cron ({cron}) when changed")


def eager(experiment: Experiment) -> AutomationCondition:
    """A stage's condition (``Stage.automation``): eager."""
    return eager_or_code_changed()


def on_refresh_cron(experiment: Experiment) -> AutomationCondition:
    """A stage's condition (``Stage.automation``) where the LLM cost is: missing, else on the refresh cron."""
    return missing_or_on_cron_when_changed(experiment.schedule.refresh_cron)


def base_model_condition() -> AutomationCondition:
    return (AutomationCondition.on_missing() | AutomationCondition.code_version_changed()).with_label(
        "on missing or code version changed"
    )


# -- sensors -----------------------------------------------------------------------------------------


def default_status() -> DefaultSensorStatus:
    stopped = os.environ.get(AUTOMATION_ENV, "").strip().lower() in ("stopped", "off", "0", "false", "no")
    return DefaultSensorStatus.STOPPED if stopped else DefaultSensorStatus.RUNNING


def automation_sensor(source_keys: Sequence[AssetKey]) -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.all() | AssetSelection.keys(*source_keys),
        default_status=default_status(),
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        description="Evaluates every asset's automation condition: observes sources on the refresh cron, "
        "materialises what is missing or whose inputs or code changed.",
    )


def inbox_sensor(experiment: Experiment, paths: StatePaths, inbox_keys: Mapping[str, AssetKey]) -> SensorDefinition:
    @sensor(
        name=INBOX_SENSOR,
        minimum_interval_seconds=experiment.schedule.inbox_poll_seconds,
        default_status=default_status(),
        description="Checks new files in <state>/inbox/<task>/ (a malformed one is moved to rejected/ with its "
        "reason) and records the inbox's new data version, which makes that task's raw inputs stale.",
    )
    def _inbox(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        seen: dict[str, dict[str, list[int]]] = json.loads(context.cursor or "{}")
        events = []
        for name, spec in experiment.tasks.items():
            folder = paths.inbox / name
            task = build_task(spec)
            before = seen.get(name, {})
            for path in inbox_files(folder):
                if before.get(path.name) == listing_stamp(folder).get(path.name):
                    continue
                try:
                    read_inbox_file(path, task.kind, partial(prompt_meta, task))
                except InboxError as error:
                    moved = reject(path, str(error))
                    context.log.warning(f"rejected {path}: {error} (moved to {moved})")
            now = listing_stamp(folder)
            seen[name] = now
            if now == before:
                continue
            key = inbox_keys[name]
            version = inbox_version(folder)
            if version != latest_observed_version(context.instance, key):
                metadata = {"path": MetadataValue.path(str(folder)), "files": len(inbox_files(folder))}
                events.append(AssetObservation(key, metadata=metadata, tags={DATA_VERSION_TAG: version}))
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not events:
            return SkipReason("no new inbox files")
        return SensorResult(asset_events=events)

    return _inbox
