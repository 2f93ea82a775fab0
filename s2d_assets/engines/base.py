"""The one engine interface every LLM call goes through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.errors import StateError
from s2d_assets.core.fingerprint import canonical_json, content_hash

ADAPTER_CONFIG = "adapter_config.json"


def require_adapter(adapter_dir: Path) -> Path:
    """A LoRA adapter folder's config; a folder without one is an error naming it, never silently skipped
    (which would evaluate the base model under the distilled model's name)."""
    config = adapter_dir / ADAPTER_CONFIG
    if not config.is_file():
        raise StateError(
            f"{adapter_dir}: not a LoRA adapter folder ({ADAPTER_CONFIG} is missing); the checkpoint is incomplete: "
            "delete it and materialise its checkpoint asset again (`s2d refresh`)"
        )
    return config


Message = tuple[str, str]  # (role, content)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    max_new_tokens: int

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationRequest:
    """One completion of one chat. ``sample_idx`` and ``seed`` make the N samples distinct.

    ``answer_set``: the completion must be one of the set's answers (a constrained final answer);
    None decodes freely. It is part of the cache key only when set, so free-form keys never moved.
    """

    messages: tuple[Message, ...]
    params: SamplingParams
    sample_idx: int = 0
    seed: int = 0
    answer_set: AnswerSet | None = None

    @classmethod
    def user(
        cls,
        content: str,
        params: SamplingParams,
        sample_idx: int = 0,
        seed: int = 0,
        answer_set: AnswerSet | None = None,
    ) -> GenerationRequest:
        return cls(
            messages=(("user", content),), params=params, sample_idx=sample_idx, seed=seed, answer_set=answer_set
        )

    @property
    def continuation(self) -> bool:
        """A chat whose last message is the assistant's: the model continues that message (no new turn).

        Every engine renders it so: transformers' ``continue_final_message``, vLLM's ``LLM.chat(...,
        continue_final_message=True)``, an OpenAI-compatible server's assistant prefix (``engine.assistant_prefix``).
        """
        return self.messages[-1][0] == "assistant"

    def as_json(self) -> dict[str, object]:
        constrained = {} if self.answer_set is None else {"answer_set": self.answer_set.as_json()}
        return {
            "messages": [{"role": role, "content": content} for role, content in self.messages],
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_new_tokens": self.params.max_new_tokens,
            "sample_idx": self.sample_idx,
            "seed": self.seed,
            **constrained,
        }

    def cache_key(self, model_fingerprint: str) -> str:
        """The content key: model + exact messages + sampling params + sample index and seed."""
        return content_hash({"model": model_fingerprint, "request": self.as_json()}, length=32)

    def request_json(self) -> str:
        return canonical_json(self.as_json())


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float = 0.0  # share of the batch's wall time; kept in the cache so reports survive hits
    # Why generation stopped: "stop" (a stop token), or "length" when cut at the token budget without one;
    # None when unknown (a server that does not say, a cache row written before it was recorded).
    finish_reason: str | None = None


def known_finish_reason(request: GenerationRequest, completion: Completion) -> str | None:
    """The completion's finish_reason, or "length" inferred where it spent the whole budget.

    For producers that do not report it (e.g. ray.data.llm's vLLM processor): a completion that used
    ``max_new_tokens`` tokens was cut there (or emitted its stop token as the very last one, which this
    cannot tell apart); one below the budget stays unknown (None), since not every producer counts its
    tokens exactly.
    """
    if completion.finish_reason is not None:
        return completion.finish_reason
    return "length" if completion.completion_tokens >= request.params.max_new_tokens else None


@runtime_checkable
class Engine(Protocol):
    """Generates completions; implementations batch internally."""

    @property
    def fingerprint(self) -> str: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...


def derive_seed(*parts: object) -> int:
    """A reproducible 63-bit seed from any JSON-able parts."""
    return int(content_hash(list(parts), length=15), 16)
