"""Progress messages and per-stage counters, without knowing who listens.

The science reports progress (``report("batch 3/10 ...")``) and generation counts
(``count_generations(hits, misses)``); whoever runs a stage decides where messages go
(``reporting(callback)``, e.g. Dagster's run logger) and collects the counts (``StageMeter``).
Both live in context variables, so concurrent stages in other threads never mix. Terminal
progress bars (tqdm) are separate and stay as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

Progress = Callable[[str], None]

_progress: ContextVar[Progress | None] = ContextVar("s2d_progress", default=None)
_meter: ContextVar[StageMeter | None] = ContextVar("s2d_stage_meter", default=None)


def report(message: str) -> None:
    """Send a progress message to the current listener, if any."""
    callback = _progress.get()
    if callback is not None:
        callback(message)


@contextmanager
def reporting(callback: Progress | None) -> Iterator[None]:
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


@dataclass
class StageMeter:
    """Wall time and generation-cache counts of one stage."""

    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    generation_seconds: float = 0.0

    @property
    def wall_seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def as_metadata(self) -> dict[str, Any]:
        requests = self.cache_hits + self.cache_misses
        metadata: dict[str, Any] = {"wall_seconds": round(self.wall_seconds, 3)}
        if requests:
            metadata |= {
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                "samples_per_second": round(requests / max(self.wall_seconds, 1e-9), 2),
            }
            if self.cache_misses:
                metadata["generated_per_second"] = round(self.cache_misses / max(self.generation_seconds, 1e-9), 2)
        return metadata


@contextmanager
def metering() -> Iterator[StageMeter]:
    """Count what the stage run inside does; the meter's wall time stops when the block ends."""
    meter = StageMeter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        meter.ended = time.perf_counter()
        _meter.reset(token)


def count_generations(hits: int, misses: int, seconds: float = 0.0) -> None:
    meter = _meter.get()
    if meter is not None:
        meter.cache_hits += hits
        meter.cache_misses += misses
        meter.generation_seconds += seconds
