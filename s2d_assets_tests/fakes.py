"""A scripted engine: fixed completions, so method and cache logic is what a test exercises."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from s2d_assets.engines.base import Completion, GenerationRequest


@dataclass
class ScriptedEngine:
    respond: Callable[[GenerationRequest], str]
    fingerprint: str = "scripted"
    calls: list[list[GenerationRequest]] = field(default_factory=list)
    fail_after_batches: int | None = None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if self.fail_after_batches is not None and len(self.calls) >= self.fail_after_batches:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(list(requests))
        return [
            Completion(
                text=(text := self.respond(r)),
                prompt_tokens=len(r.messages[-1][1].split()),
                completion_tokens=len(text.split()),
            )
            for r in requests
        ]

    @property
    def requests(self) -> list[GenerationRequest]:
        return [r for batch in self.calls for r in batch]
