"""Universal Self-Consistency (Chen et al., 2023, arXiv 2311.17311): the model picks the sample
most consistent with the others, for free-form answers where a vote over exact strings fails.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed

USC_TEMPLATE = (
    "I have generated the following responses to the question: {question}\n\n{responses}\n\n"
    "Evaluate these responses.\nSelect the most consistent response based on majority consensus.\n"
    'Start your answer with "The most consistent response is Response X" (without quotes).'
)
_CHOSEN = re.compile(r"most consistent response is\W*Response\s*(\d+)", re.IGNORECASE)
_ANY = re.compile(r"\bResponse\s*(\d+)", re.IGNORECASE)

USC_MAX_NEW_TOKENS = 24


def usc_prompt(question: str, responses: Sequence[str]) -> str:
    listed = "\n".join(f"Response {index}: {text.strip()}" for index, text in enumerate(responses))
    return USC_TEMPLATE.format(question=question, responses=listed)


def parse_selection(text: str, n_responses: int) -> int | None:
    """The selected response index: 'The most consistent response is Response X', else a single 'Response X'."""
    chosen = _CHOSEN.search(text)
    if chosen is None:
        mentioned = set(_ANY.findall(text))
        if len(mentioned) != 1:
            return None
        index = int(mentioned.pop())
    else:
        index = int(chosen.group(1))
    return index if 0 <= index < n_responses else None


def select_most_consistent(engine: Any, items: Sequence[tuple[str, Sequence[str]]], seed: int) -> list[int | None]:
    """One greedy USC call per (question, responses) item, all in one engine call; the parsed selections."""
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=USC_MAX_NEW_TOKENS)
    prompts = [usc_prompt(question, responses) for question, responses in items]
    requests = [GenerationRequest.user(p, params, seed=derive_seed(seed, "usc", p)) for p in prompts]
    completions = engine.generate(requests) if requests else []
    return [parse_selection(c.text, len(r)) for c, (_, r) in zip(completions, items, strict=True)]
