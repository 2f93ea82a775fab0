"""After a run: wall time per stage and the generation cache's hits and misses, from the run's event log."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance

STEP_EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
}


@dataclass(frozen=True)
class StepTiming:
    label: str  # the asset the step wrote (without the experiment), else the step key
    seconds: float
    status: str
    cache_hits: int
    cache_misses: int


def run_timings(instance: DagsterInstance, run_id: str) -> list[StepTiming]:
    """One row per step of the run, in start order: from STEP_START to STEP_SUCCESS (or failure)."""
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, str]] = {}
    labels: dict[str, str] = {}
    hits: dict[str, int] = {}
    misses: dict[str, int] = {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        step, kind = entry.step_key, entry.dagster_event_type
        if step is None:
            continue
        if kind == DagsterEventType.STEP_START:
            started[step] = entry.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            ended[step] = (entry.timestamp, "ok" if kind == DagsterEventType.STEP_SUCCESS else "failed")
        else:
            event = entry.asset_materialization or entry.asset_observation
            if event is None:
                continue
            labels.setdefault(step, "/".join(event.asset_key.path[1:]) or event.asset_key.to_user_string())
            metadata = event.metadata or {}
            hits[step] = hits.get(step, 0) + int(getattr(metadata.get("cache_hits"), "value", 0) or 0)
            misses[step] = misses.get(step, 0) + int(getattr(metadata.get("cache_misses"), "value", 0) or 0)
    rows, others = [], []
    for step, start in sorted(started.items(), key=lambda item: item[1]):
        end, status = ended.get(step, (start, "unfinished"))
        if step in labels:
            rows.append(StepTiming(labels[step], end - start, status, hits.get(step, 0), misses.get(step, 0)))
        else:  # asset checks (and any op): one line for all of them
            others.append((end - start, status))
    if others:
        failed = [status for _, status in others if status != "ok"]
        label = f"asset checks and other steps ({len(others)})"
        rows.append(StepTiming(label, sum(seconds for seconds, _ in others), failed[0] if failed else "ok", 0, 0))
    return rows


def format_timings(rows: list[StepTiming]) -> str:
    """A text table: stage, seconds, cache hits and misses, then the totals."""
    width = max([len("stage"), *(len(row.label) for row in rows)])
    lines = [f"{'stage':<{width}}  {'seconds':>8}  {'cache hits':>10}  {'misses':>7}", "-" * (width + 33)]
    for row in rows:
        flag = "" if row.status == "ok" else f"  ({row.status})"
        lines.append(f"{row.label:<{width}}  {row.seconds:8.1f}  {row.cache_hits:10d}  {row.cache_misses:7d}{flag}")
    total = sum(row.seconds for row in rows)
    hits, misses = sum(row.cache_hits for row in rows), sum(row.cache_misses for row in rows)
    lines.append("-" * (width + 33))
    lines.append(f"{'total':<{width}}  {total:8.1f}  {hits:10d}  {misses:7d}")
    return "\n".join(lines)
