"""Runs a method's steps over many chains: one batched engine call per step.

A chain is one (input, variant, sample). Step k of every chain (and every fan-out item of
every chain) is sent to the engine in a single call, so the engine sees one large batch per
step; sample j of step k+1 sees sample j of step k. Compute steps make no call.

A step that ``continues`` an earlier one sends that step's user prompt and, as the assistant's
message to be continued, its output and this step's cue. Each LLM step's record carries the
engine's ``finish_reason``; ``ChainResult.finish_reason`` says whether any step was cut at its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from s2d_assets.core.answer_set import CONSTRAINED, AnswerSet
from s2d_assets.engines.base import Completion, GenerationRequest, Message, SamplingParams, derive_seed
from s2d_assets.methods.base import Compute, MethodDefinition, Step
from s2d_assets.tasks.base import DEFAULT_ANSWER_FORMAT

# Between the continued turn's output and the cue that continues it.
CONTINUATION_SEPARATOR = "\n"


class Generator(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...


@dataclass(frozen=True)
class Chain:
    input_id: str
    question: str
    variant_id: int = 0
    sample_idx: int = 0
    # The input's answer set (the task's ``answer_set(meta)``): a constrained method's answer step chooses in it.
    answer_set: AnswerSet | None = None


@dataclass
class ChainResult:
    chain: Chain
    steps: list[dict[str, Any]] = field(default_factory=list)
    cache_key: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    # (messages, output) of each one-call LLM step, for the steps that continue its turn
    turns: dict[str, tuple[tuple[Message, ...], str]] = field(default_factory=dict, repr=False)

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

    @property
    def finish_reason(self) -> str | None:
        """ "length" if any LLM step was cut at its budget, "stop" if every one stopped, else None (unknown)."""
        return chain_finish_reason([step["finish_reason"] for step in self.steps if "finish_reason" in step])


def chain_finish_reason(reasons: Sequence[str | None]) -> str | None:
    """Several calls' finish reasons as one: truncated if any was, stopped only if all were known to stop."""
    if "length" in reasons:
        return "length"
    return "stop" if reasons and all(reason == "stop" for reason in reasons) else None


def run_method(
    method: MethodDefinition,
    chains: Sequence[Chain],
    engine: Generator,
    temperature: float,
    top_p: float,
    seed: int,
    model_fingerprint: str = "",
    answer_format: str = DEFAULT_ANSWER_FORMAT,
) -> list[ChainResult]:
    """Every chain through the method; ``answer_format`` is the task's answer-set phrase (``Task.answer_format``)."""
    if method.slots:
        raise ValueError(f"method {method.kind}: slot(s) {list(method.slots)} must be bound before running")
    results = [
        ChainResult(chain, fields={"question": chain.question, "answer_format": answer_format}) for chain in chains
    ]
    for step in method.steps:
        if isinstance(step, Compute):
            for result in results:
                _compute(step, result)
        else:
            constrained = method.answer == CONSTRAINED and step.name == method.answer_step
            _generate(step, results, engine, temperature, top_p, seed, model_fingerprint, constrained)
    return results


def _compute(step: Compute, result: ChainResult) -> None:
    produced = step.fn(result.fields)
    result.fields.update(produced)
    result.steps.append(
        {
            "name": step.name,
            "prompt": "",
            "output": str(produced[step.name]),
            "fields": {key: produced[key] for key in step.provides},
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "seconds": 0.0,
        }
    )


def _generate(
    step: Step,
    results: list[ChainResult],
    engine: Generator,
    temperature: float,
    top_p: float,
    seed: int,
    model_fingerprint: str,
    constrained: bool = False,
) -> None:
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=step.max_new_tokens)
    requests: list[GenerationRequest] = []
    owners: list[tuple[int, int | None]] = []  # (chain index, fan-out item index)
    for index, result in enumerate(results):
        items: list[Any] = [None] if step.for_each is None else list(result.fields[step.for_each])
        for item_index, item in enumerate(items):
            extra = {} if step.for_each is None else {"item": item, "item_number": item_index + 1}
            content = step.template.format(**{**result.fields, **extra})
            messages: tuple[Message, ...] = (("user", content),)
            if step.continues is not None:
                earlier, said = result.turns[step.continues]
                messages = (*earlier, ("assistant", said + CONTINUATION_SEPARATOR + content))
            sample = result.chain.sample_idx
            answer_set = result.chain.answer_set if constrained else None
            if constrained and answer_set is None:
                raise ValueError(f"step {step.name!r} is constrained; input {result.chain.input_id} has no answer set")
            draw = derive_seed(seed, sample, content) if len(messages) == 1 else derive_seed(seed, sample, messages)
            requests.append(GenerationRequest(messages, params, sample_idx=sample, seed=draw, answer_set=answer_set))
            owners.append((index, None if step.for_each is None else item_index))
    completions = engine.generate(requests) if requests else []
    outputs: list[list[str]] = [[] for _ in results]
    parsed: list[list[dict[str, Any]]] = [[] for _ in results]
    for (index, item_index), request, completion in zip(owners, requests, completions, strict=True):
        result = results[index]
        record: dict[str, Any] = {
            "name": step.name,
            "prompt": request.messages[-1][1],
            "output": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "seconds": completion.seconds,
            "finish_reason": completion.finish_reason,
        }
        if step.continues is not None:
            record["continues"] = step.continues
        elif item_index is None:
            result.turns[step.name] = (request.messages, completion.text)
        if item_index is not None:
            record["item"] = item_index
        if step.parse is not None:
            record["fields"] = step.parse(completion.text)
            parsed[index].append(record["fields"])
        result.steps.append(record)
        result.cache_key = request.cache_key(model_fingerprint)
        outputs[index].append(completion.text)
    for result, texts, fields in zip(results, outputs, parsed, strict=True):
        if step.for_each is None:
            result.fields[step.name] = texts[0]
            result.fields.update(fields[0] if fields else {})
        else:  # a fan-out step's output and parsed fields are lists, one entry per item
            result.fields[step.name] = texts
            if step.parse is not None:
                result.fields.update({key: [f[key] for f in fields] for key in step.parse.provides})
