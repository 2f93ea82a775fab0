"""Generating a stage's cache misses elsewhere, as one job (``engines/ray_executor.py``).

The generation cache hands every miss of one engine call to a ``RemoteGenerator`` at once, then
writes what comes back in one transaction: completions to ``llm_cache``, failed rows to
``generation_failures``. Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from s2d_assets.engines.base import Completion, GenerationRequest


def _nothing() -> None:
    return None


@dataclass
class RemoteResult:
    """Every requested key is in exactly one of ``completions`` and ``failures`` (key -> error message)."""

    completions: dict[str, Completion]
    failures: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, float | int] = field(default_factory=dict)  # rows, seconds, samples per second, ...
    finish: Callable[[], None] = _nothing  # called once the results are in the warehouse (removes staging)


class RemoteGenerator(Protocol):
    def generate(
        self, model_fingerprint: str, label: str, requests: Sequence[tuple[str, GenerationRequest]]
    ) -> RemoteResult:
        """Generate ``(cache key, request)`` pairs, given in the order the in-process engine would batch them."""
        ...


# A failed row's stand-in for the stage: no text, never cached; its answer parses as missing.
FAILED_COMPLETION = Completion(text="", prompt_tokens=0, completion_tokens=0, finish_reason="error")
