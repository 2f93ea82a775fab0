"""Jobs, the scheduled refresh and the inbox sensor."""

import json
from functools import partial

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from s2d_assets.config.experiment import Experiment
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.common import task_key
from s2d_assets.defs.refresh import stale_closure, with_descendants
from s2d_assets.tasks import build_task
from s2d_assets.tasks.base import prompt_meta
from s2d_assets.tasks.inbox import InboxError, inbox_files, listing_stamp, read_inbox_file, reject

MATERIALIZE_ALL = "materialize_all"
REFRESH = "refresh"


def jobs() -> list:  # type: ignore[type-arg]
    return [
        define_asset_job(MATERIALIZE_ALL, selection=AssetSelection.all(), description="Materialise every stage."),
        # Launched with the stale closure as its asset selection (by `s2d refresh`, the schedule, the sensor).
        define_asset_job(
            REFRESH, selection=AssetSelection.all(), description="Materialise what is stale or missing, and downstream."
        ),
    ]


def refresh_schedule(experiment: Experiment) -> ScheduleDefinition:
    @schedule(
        name="refresh_schedule",
        job_name=REFRESH,
        cron_schedule=experiment.schedule.refresh_cron,
        default_status=DefaultScheduleStatus.STOPPED,
        description="Refresh the stale closure (stale or missing assets and everything downstream).",
    )
    def _refresh(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        keys = stale_closure(context.instance, context.repository_def.asset_graph)
        if not keys:
            return SkipReason("every asset is up to date")
        return RunRequest(asset_selection=keys, tags={"s2d/trigger": "schedule"})

    return _refresh


def inbox_sensor(experiment: Experiment, paths: StatePaths) -> SensorDefinition:
    @sensor(
        name="inbox_sensor",
        job_name=REFRESH,
        minimum_interval_seconds=experiment.schedule.inbox_poll_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="New input files in <state>/inbox/<task>/ refresh that task's raw inputs and downstream.",
    )
    def _inbox(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        seen: dict[str, dict[str, list[int]]] = json.loads(context.cursor or "{}")
        changed: list[str] = []
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
            if now != before:
                changed.append(name)
            seen[name] = now
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if not changed:
            return SkipReason("no new inbox files")
        keys = with_descendants(
            context.repository_def.asset_graph, [task_key(experiment.name, t, "raw_inputs") for t in changed]
        )
        return RunRequest(
            run_key=content_hash(seen),
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            tags={"s2d/trigger": "inbox", "s2d/tasks": ",".join(changed)},
        )

    return _inbox
