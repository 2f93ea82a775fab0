"""The transformers engine on the tiny model: seeds, shared prefill, token counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine

SAMPLING = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> TransformersEngine:
    return TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32")


def test_same_seed_same_text_different_seed_different_text(engine: TransformersEngine) -> None:
    requests = [GenerationRequest.user("Is the coin still heads up?", SAMPLING, sample_idx=i, seed=i) for i in range(6)]
    first = engine.generate(requests)
    second = engine.generate(list(reversed(requests)))
    assert [c.text for c in first] == [c.text for c in reversed(second)]
    assert len({c.text for c in first}) > 1


def test_shared_prefill_matches_generating_alone(engine: TransformersEngine) -> None:
    long = GenerationRequest.user("A coin is heads up. Ann flips the coin. Is the coin still heads up?", GREEDY)
    short = GenerationRequest.user("Elon Musk", GREEDY)
    together = engine.generate([long, short, long])
    alone = engine.generate([short])
    assert together[1].text == alone[0].text  # left padding does not change the answer
    assert together[0].text == together[2].text


def test_token_counts(engine: TransformersEngine) -> None:
    request = GenerationRequest.user("Elon Musk", SamplingParams(1.0, 1.0, max_new_tokens=5), seed=3)
    (completion,) = engine.generate([request])
    prompt_ids = engine.tokenizer(engine.render(request), add_special_tokens=False)["input_ids"]
    assert completion.prompt_tokens == len(prompt_ids)
    assert 1 <= completion.completion_tokens <= 5
    assert completion.seconds > 0
