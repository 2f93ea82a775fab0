"""Pairwise judging with the model: the base model's answers for the task's MT-bench pairs, and eval
pairs judged in both orders.

The judging task (``tasks/judging.py``) holds the pair format, the verdict parser and the metrics and
never calls a model; what needs an engine or runs a method lives here, one layer up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from s2d_assets.config.tasks import GenerationSettingSpec
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.tasks.judging import (
    Answerer,
    PairwiseJudgingTask,
    label_agreement,
    position_inconsistency,
    swapped_prompt,
)


def engine_answerer(engine: Any, seed: int) -> Answerer:
    """Answer prompts with an engine under one generation setting (one sample each)."""

    def answer(prompts: Sequence[str], setting: GenerationSettingSpec) -> list[str]:
        params = SamplingParams(setting.temperature, setting.top_p, setting.max_new_tokens)
        requests = [GenerationRequest.user(p, params, seed=derive_seed(seed, "pair", p)) for p in prompts]
        return [c.text.strip() for c in engine.generate(requests)]

    return answer


def position_metrics(
    task: PairwiseJudgingTask,
    method: Any,
    engine: Any,
    items: Sequence[dict[str, Any]],
    temperature: float,
    top_p: float,
    seed: int,
) -> dict[str, float | None]:
    """Judge every eval pair in both orders: position-inconsistency rate and agreement with the labels."""
    chains = [
        Chain(item["input_id"], prompt, answer_set=task.answer_set({}))
        for item in items
        for prompt in (item["prompt"], swapped_prompt(item["prompt"]))
    ]
    fingerprint = getattr(engine, "model_fingerprint", "")
    results = run_method(method, chains, engine, temperature, top_p, seed, fingerprint, task.answer_format)
    verdicts = [task.parse_answer(result.output, {}) for result in results]
    original, swapped = verdicts[0::2], verdicts[1::2]
    return {
        "position_inconsistency": position_inconsistency(list(zip(original, swapped, strict=True))),
        "label_agreement": label_agreement(original, [str(item["reference"] or "") for item in items]),
    }
