"""``SamplingParams`` with vLLM 0.29.0's field names and the checks the project can trip."""

from __future__ import annotations

import math
from typing import Any

from vllm.exceptions import VLLMValidationError

_SAMPLING_EPS = 1e-5

# A subset of vLLM's fields: unknown keywords are refused, as msgspec refuses them.
_DEFAULTS: dict[str, Any] = {
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "seed": None,
    "stop": None,
    "stop_token_ids": None,
    "ignore_eos": False,
    "max_tokens": 16,
    "min_tokens": 0,
    "logprobs": None,
    "skip_special_tokens": True,
    "structured_outputs": None,
}


class StructuredOutputsParams:
    """vLLM 0.29.0's structured-outputs constraint: exactly one kind (the fields the project can send)."""

    def __init__(
        self, json: Any = None, regex: str | None = None, choice: list[str] | None = None, grammar: str | None = None
    ) -> None:
        self.json, self.regex, self.choice, self.grammar = json, regex, choice, grammar
        count = sum(value is not None for value in (json, regex, choice, grammar))
        if count != 1:
            raise VLLMValidationError(f"You must use exactly one kind of structured outputs constraint, got {count}")


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")
        for name, default in _DEFAULTS.items():
            setattr(self, name, kwargs.get(name, default))
        if self.seed == -1:
            self.seed = None
        self._verify_args()
        if self.temperature < _SAMPLING_EPS:  # greedy
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0
            if self.n > 1:
                raise VLLMValidationError(f"n must be 1 when using greedy sampling, got {self.n}.")

    def _verify_args(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise VLLMValidationError(f"n must be at least 1, got {self.n}.")
        if not math.isfinite(self.temperature):
            raise VLLMValidationError(f"temperature must be a finite number, got {self.temperature}.")
        if self.temperature < 0.0:
            raise VLLMValidationError(f"temperature must be non-negative, got {self.temperature}.")
        if self.temperature > 2.0:
            raise VLLMValidationError(f"temperature must be in [0, 2], got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise VLLMValidationError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise VLLMValidationError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.seed is not None and not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")

    @property
    def greedy(self) -> bool:
        return self.temperature < _SAMPLING_EPS

    def child(self, index: int) -> SamplingParams:
        """vLLM's ``ParentRequest._get_child_sampling_params``: child k of a seeded request uses seed + k."""
        fields = {name: getattr(self, name) for name in _DEFAULTS}
        fields["n"] = 1
        if self.seed is not None:
            fields["seed"] = self.seed + index
        return SamplingParams(**fields)
