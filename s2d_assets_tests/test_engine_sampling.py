"""Vectorised sampling and the preallocated KV cache: exactness against transformers' own paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.engines.sampling import NUCLEUS_CANDIDATES, sample, seed_words, uniforms


def test_uniforms_are_a_function_of_seed_and_step_only() -> None:
    words = seed_words([1, 2, 3, 2**62 + 5])
    first = uniforms(words, step=4)
    assert torch.equal(first[1:3], uniforms(seed_words([2, 3]), step=4))
    assert not torch.equal(first, uniforms(words, step=5))
    assert len(set(first.tolist())) == 4
    many = uniforms(seed_words(list(range(20_000))), step=0)
    assert float(many.min()) >= 0.0 and float(many.max()) < 1.0
    assert abs(float(many.mean()) - 0.5) < 0.01


def test_greedy_rows_take_the_argmax() -> None:
    logits = torch.randn(3, 50)
    chosen = sample(logits, torch.zeros(3), torch.ones(3), seed_words([0, 1, 2]), 0)
    assert torch.equal(chosen, logits.argmax(-1))


def test_nucleus_keeps_only_the_top_mass() -> None:
    # Two tokens hold 0.9 of the mass; with top_p 0.8 only they may be drawn.
    probs = torch.full((1, 1000), 0.1 / 998)
    probs[0, 7], probs[0, 11] = 0.5, 0.4
    logits = probs.log().repeat(500, 1)
    chosen = sample(logits, torch.ones(500), torch.full((500,), 0.8), seed_words(list(range(500))), 0)
    assert set(chosen.tolist()) == {7, 11}
    assert 0.45 < float((chosen == 7).float().mean()) < 0.65


def test_wide_nucleus_falls_back_to_the_full_vocabulary() -> None:
    vocab = NUCLEUS_CANDIDATES * 8
    logits = torch.zeros(400, vocab)  # uniform: the nucleus needs almost every token
    chosen = sample(logits, torch.ones(400), torch.full((400,), 0.99), seed_words(list(range(400))), 3)
    assert int((chosen >= NUCLEUS_CANDIDATES).sum()) > 300  # draws reach beyond the candidate set


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> TransformersEngine:
    return TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32", max_batch=5)


def test_greedy_matches_transformers_generate(engine: TransformersEngine) -> None:
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=10)
    questions = ["Elon Musk", "A coin is heads up. Ann flips the coin.", "yes no", "Is the coin still heads up?"]
    ours = engine.generate([GenerationRequest.user(q, params) for q in questions])
    for question, completion in zip(questions, ours, strict=True):
        text = engine.render(GenerationRequest.user(question, params))
        encoded = engine.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        out = engine.model.generate(**encoded, do_sample=False, max_new_tokens=10, pad_token_id=0)
        new = [t for t in out[0, encoded["input_ids"].shape[1] :].tolist() if t not in engine.stop_ids]
        assert completion.text == engine.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_samples_do_not_depend_on_batch_size_or_neighbours(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12)
    requests = [
        GenerationRequest.user(q, params, sample_idx=i, seed=100 + i)
        for q in ("Elon Musk", "Ann flips the coin.", "ABC")
        for i in range(4)
    ]
    small_batches = engine.generate(requests)  # max_batch 5: split across batches
    wide = TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32", max_batch=64)
    one_batch = wide.generate(list(reversed(requests)))
    assert [c.text for c in small_batches] == [c.text for c in reversed(one_batch)]
    assert [c.completion_tokens for c in small_batches] == [c.completion_tokens for c in reversed(one_batch)]
    alone = wide.generate([requests[5]])
    assert alone[0].text == small_batches[5].text


def test_per_request_budgets_and_plan(engine: TransformersEngine) -> None:
    short = GenerationRequest.user("Elon Musk", SamplingParams(1.0, 1.0, max_new_tokens=2), seed=1)
    long = GenerationRequest.user("Elon Musk", SamplingParams(1.0, 1.0, max_new_tokens=9), seed=1)
    a, b = engine.generate([short, long])
    assert a.completion_tokens <= 2
    assert b.completion_tokens <= 9
    assert a.prompt_tokens == b.prompt_tokens


def test_top_p_one_draws_from_the_whole_distribution() -> None:
    weights = torch.rand(1, 600, generator=torch.Generator().manual_seed(0)) ** 4
    weights[0, 5] = 40.0  # one token holds about half the mass
    probs = weights / weights.sum()
    rows = 4000
    chosen = sample(probs.log().repeat(rows, 1), torch.ones(rows), torch.ones(rows), seed_words(list(range(rows))), 1)
    share = float((chosen == 5).float().mean())
    assert abs(share - float(probs[0, 5])) < 0.03
    assert len(set(chosen.tolist())) > 250  # the tail is reachable
