"""Runs a method's steps over many chains: one batched engine call per step.

A chain is one (input, variant, sample). Step k of every chain is sent to the engine in a
single call, so the engine sees one large batch per step; sample j of step k+1 sees sample j
of step k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from s2d_assets.engines.base import Completion, GenerationRequest, SamplingParams, derive_seed
from s2d_assets.methods.base import MethodDefinition


class Generator(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...


@dataclass(frozen=True)
class Chain:
    input_id: str
    question: str
    variant_id: int = 0
    sample_idx: int = 0


@dataclass
class ChainResult:
    chain: Chain
    steps: list[dict[str, Any]] = field(default_factory=list)
    cache_key: str = ""

    @property
    def output(self) -> str:
        return str(self.steps[-1]["output"]) if self.steps else ""

    @property
    def prompt_tokens(self) -> int:
        return sum(int(step["prompt_tokens"]) for step in self.steps)

    @property
    def completion_tokens(self) -> int:
        """Every generated token of every step: intermediate and final."""
        return sum(int(step["completion_tokens"]) for step in self.steps)

    @property
    def seconds(self) -> float:
        return sum(float(step["seconds"]) for step in self.steps)


def run_method(
    method: MethodDefinition,
    chains: Sequence[Chain],
    engine: Generator,
    temperature: float,
    top_p: float,
    seed: int,
    model_fingerprint: str = "",
) -> list[ChainResult]:
    results = [ChainResult(chain) for chain in chains]
    for step in method.steps:
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=step.max_new_tokens)
        requests = []
        for result in results:
            earlier = {s["name"]: s["output"] for s in result.steps}
            content = step.render(result.chain.question, earlier)
            sample = result.chain.sample_idx
            requests.append(
                GenerationRequest.user(content, params, sample_idx=sample, seed=derive_seed(seed, sample, content))
            )
        completions = engine.generate(requests)
        for result, request, completion in zip(results, requests, completions, strict=True):
            result.steps.append(
                {
                    "name": step.name,
                    "prompt": request.messages[-1][1],
                    "output": completion.text,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "seconds": completion.seconds,
                }
            )
            result.cache_key = request.cache_key(model_fingerprint)
    return results
