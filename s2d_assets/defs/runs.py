"""Running a job from the command line: dead runs reaped first, user errors reported as such.

- Every run the ``s2d`` command executes (in its own process) is tagged with the process's id
  and start time. A run still marked as started whose process is gone (killed, ``kill -9``, a
  power cut) is marked failed before the next run starts, and its concurrency-pool slots are
  freed, so the next run never waits for a slot a dead run holds. (Runs launched by the daemon
  are watched by Dagster's own run monitoring, switched on in the generated ``dagster.yaml``.)
- A run fails when a step raises. When the step's error, or any error in its chain of causes,
  is a ``UserError`` (a bad task file, a corrupt marker, ...), ``run_job`` raises a ``UserError``
  with that message, so ``s2d`` prints one line and exits with status 2 as for any user error.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, Definitions, JobDefinition, RunsFilter

from s2d_assets.core.errors import StateError, UserError, one_line, user_error_names
from s2d_assets.core.locks import exclusive
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.process import pid_alive

PID_TAG = "s2d/pid"
HOST_TAG = "s2d/host"
START_TAG = "s2d/process_start"
UNFINISHED = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING]


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), START_TAG: _process_start(pid)}


def _alive(tags: Mapping[str, str]) -> bool:
    if tags.get(HOST_TAG) != socket.gethostname():
        return True  # another machine's process: not ours to judge
    pid = int(tags[PID_TAG])
    if not pid_alive(pid):
        return False
    started = tags.get(START_TAG)
    return not started or _process_start(pid) in ("", started)


def reap_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark runs of dead ``s2d`` processes failed and free their pool slots; returns their run ids."""
    reaped = []
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED)):
        if PID_TAG not in run.tags or _alive(run.tags):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {run.tags[PID_TAG]}) is gone")
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        # Slots of any finished run (the reaped ones, or a run whose process died after it ended).
        holders = list(storage.get_concurrency_run_ids())
        runs = instance.get_runs(filters=RunsFilter(run_ids=holders)) if holders else []
        for run in runs:
            if run.is_finished:
                storage.free_concurrency_slots_for_run(run.run_id)
    return reaped


def _chain(error: Any) -> Iterator[Any]:
    """An error record and its causes and contexts, depth first."""
    pending, seen = [error], set()
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending.extend([getattr(item, "context", None), getattr(item, "cause", None)])


def user_error_message(error: Any) -> str | None:
    """The message of the first ``UserError`` in a step's error record (Dagster's SerializableErrorInfo)."""
    names = user_error_names()
    for item in _chain(error):
        name = getattr(item, "cls_name", None)
        if name in names:
            text = str(getattr(item, "message", "")).strip()
            # Dagster records "<module>.<Class>: <message>"; keep the message.
            match = re.match(rf"^(?:[\w.]+\.)?{re.escape(name)}: (.*)$", text, re.DOTALL)
            return one_line(match.group(1) if match else text)
    return None


def failed_steps(result: Any) -> list[tuple[str, Any]]:
    """(step key, error record) of every failed step of an in-process run result."""
    return [
        (event.step_key or "", event.step_failure_data.error)
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data is not None
    ]


def run_job(job: JobDefinition, instance: DagsterInstance, debug: bool = False, **kwargs: Any) -> Any:
    """``job.execute_in_process`` after reaping dead runs, tagged with this process; a user error raises.

    Dagster's console log shows only critical events unless ``debug``: a failed step's error is
    reported once, by ``s2d`` (one line for a user error, ``report_failure`` otherwise).
    """
    reap_dead_runs(instance)
    tags = {**kwargs.pop("tags", {}), **process_tags()}
    run_config = {"loggers": {"console": {"config": {"log_level": "DEBUG" if debug else "CRITICAL"}}}}
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags, run_config=run_config, **kwargs)
    if not result.success:
        for step, error in failed_steps(result):
            message = user_error_message(error)
            if message:
                raise UserError(message + f" (step {step}, run {result.run_id})")
    return result


def report_failure(result: Any, headline: str) -> None:
    """A failed run with internal errors: one line per failed step on stderr."""
    print(f"{headline} (run id {result.run_id}):", file=sys.stderr)
    for step, error in failed_steps(result):
        root = list(_chain(error))[-1]
        print(f"  {step}: {one_line(str(getattr(root, 'message', error)))[:300]}", file=sys.stderr)
    print("Run with --debug (or open the run in the UI: s2d ui) for the tracebacks.", file=sys.stderr)


@contextmanager
def open_instance(paths: StatePaths) -> Iterator[DagsterInstance]:
    """The persistent Dagster instance; one that cannot load is a ``StateError`` naming its files.

    Loading an instance for the first time creates its SQLite tables, and two processes doing
    that at once collide ("table runs already exists"). Loading is therefore done by one s2d
    process at a time, under a lock in the state folder; the runs themselves go on side by side.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or paths.dagster_home)
    try:
        with exclusive(paths.root / ".dagster-instance.lock", timeout=120, held_for="the Dagster instance"):
            instance = DagsterInstance.get()
    except StateError:
        raise
    except Exception as error:
        raise StateError(
            f"{home / 'dagster.yaml'}: Dagster cannot load its instance from {home} ({one_line(str(error))[:200]}); "
            f"fix or delete dagster.yaml (s2d writes a fresh one)"
        ) from error
    with instance:
        yield instance


def preflight(defs: Definitions, paths: StatePaths) -> None:
    """The state folder and every input checked before a run starts (``distill/preflight.py``)."""
    from s2d_assets.distill import StageContext
    from s2d_assets.distill.preflight import preflight as check

    ctx = (defs.resources or {}).get("s2d")
    if isinstance(ctx, StageContext):
        check(ctx)
