"""Coconut: the latent forward with KV-cache reuse, the curriculum sequences, training and decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2d_assets.coconut import prosqa
from s2d_assets.coconut.curriculum import (
    IGNORE,
    TokenIds,
    Tokenized,
    build_example,
    build_prompt,
    collate,
    curriculum,
    tokenize,
)
from s2d_assets.coconut.model import Coconut, TrainConfig, add_special_tokens, generate_all, load, train
from s2d_assets.coconut.stages import final_answer

IDS = TokenIds(bot=1, eot=2, latent=3, pause=4, eos=5, pad=0)
ITEM = Tokenized(question=[10, 11, 12], steps=[[20, 21], [22], [23, 24, 25]], answer=[30, 31, 5])


@pytest.fixture(scope="module")
def coconut_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("coconut") / "tiny-coconut"
    add_special_tokens(tiny_model_dir, target)
    return target


def naive_logits(coconut: Coconut, batch: dict) -> torch.Tensor:  # type: ignore[type-arg]
    """Recompute the whole prefix for every thought, without any cache: the definition of the method."""
    model, ids = coconut.model, batch["input_ids"]
    embeds = model.get_input_embeddings()(ids).clone()
    n_latent = (ids == coconut.ids.latent).sum(-1)
    mask, positions = batch["attention_mask"], batch["position_ids"]
    for j in range(int(n_latent.max())):
        column = batch["thought_start"] + j
        out = model(
            inputs_embeds=embeds[:, :column],
            attention_mask=mask[:, :column],
            position_ids=positions[:, :column],
            output_hidden_states=True,
        )
        rows = n_latent > j
        embeds[rows, column] = out.hidden_states[-1][rows, -1]
    return model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits


def test_kv_cache_forward_equals_naive_recomputation(coconut_model: Path) -> None:
    coconut, tokenizer = load(coconut_model, torch.device("cpu"))
    coconut.model.eval()
    records = prosqa.generate(5, seed=0, n_nodes=5, min_hops=1)
    items = [tokenize(r, tokenizer) for r in records]
    # Different question lengths and 0..3 thoughts per row in one batch.
    examples = [
        build_example(item, coconut.ids, "coconut", s, 1, 3) for item, s in zip(items, [0, 1, 2, 3, 2], strict=True)
    ]
    batch = collate(examples, coconut.ids.pad)
    with torch.no_grad():
        cached, _ = coconut.forward(batch)
        naive = naive_logits(coconut, batch)
    real = batch["attention_mask"].bool()
    assert cached.shape == naive.shape
    assert torch.allclose(cached[real], naive[real], atol=1e-4, rtol=1e-4)
    # The thoughts matter: feeding the <latent> embedding instead changes what follows.
    with torch.no_grad():
        plain = coconut.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}).logits
    after = batch["thought_start"] + 3
    assert not torch.allclose(plain[3, after:][real[3, after:]], cached[3, after:][real[3, after:]], atol=1e-4)


def test_loss_backpropagates_through_the_thought_passes(coconut_model: Path) -> None:
    coconut, tokenizer = load(coconut_model, torch.device("cpu"))
    item = tokenize(prosqa.generate(1, seed=0, n_nodes=4, min_hops=1)[0], tokenizer)
    batch = collate([build_example(item, coconut.ids, "coconut", 2, 1, 2)], coconut.ids.pad)
    coconut.loss(batch).backward()
    question_rows = batch["input_ids"][0, : batch["thought_start"]]
    grad = coconut.model.get_input_embeddings().weight.grad
    assert grad is not None and grad[question_rows].abs().sum() > 0


@pytest.mark.parametrize(
    ("stage", "thoughts", "kept_steps"),
    [
        (0, 0, [0, 1, 2]),
        (1, 2, [1, 2]),
        (2, 4, []),
    ],
)
def test_curriculum_places_thoughts_and_masks_labels(stage: int, thoughts: int, kept_steps: list[int]) -> None:
    example = build_example(ITEM, IDS, "coconut", stage=stage, c=2, max_stage=2)
    steps = [t for i in kept_steps for t in ITEM.steps[i]]
    assert example.input_ids == [10, 11, 12, IDS.bot, *[IDS.latent] * thoughts, IDS.eot, *steps, 30, 31, 5]
    hidden = 3 + 1 + thoughts + 1
    assert example.labels == [IGNORE] * hidden + [*steps, 30, 31, 5]
    assert example.prefix_len == 4 and example.n_thoughts == thoughts


def test_curriculum_counts_per_stage_with_fewer_steps_than_stages() -> None:
    short = Tokenized(question=[10], steps=[[20]], answer=[30, 5])
    for stage in range(4):
        example = curriculum([short], IDS, stage, c=1, max_stage=3)[0]
        assert example.input_ids.count(IDS.latent) == stage  # k·c thoughts even past the last step
        assert 20 not in example.input_ids[1:] or stage == 0
    with pytest.raises(ValueError, match="stage 4"):
        curriculum([short], IDS, 4, c=1, max_stage=3)


def test_baseline_sequences() -> None:
    cot = build_example(ITEM, IDS, "cot")
    assert cot.input_ids == [10, 11, 12, 20, 21, 22, 23, 24, 25, 30, 31, 5]
    assert cot.labels[:3] == [IGNORE] * 3 and cot.labels[3:] == cot.input_ids[3:]
    no_cot = build_example(ITEM, IDS, "no_cot")
    assert no_cot.input_ids == [10, 11, 12, 30, 31, 5] and no_cot.labels == [IGNORE] * 3 + [30, 31, 5]
    pause = build_example(ITEM, IDS, "pause", c=1, max_stage=3)
    assert pause.input_ids == [10, 11, 12, IDS.bot, IDS.pause, IDS.pause, IDS.pause, IDS.eot, 30, 31, 5]
    assert pause.labels == [IGNORE] * 8 + [30, 31, 5]
    prompt = build_prompt(ITEM, IDS, "coconut", 3)
    assert prompt.input_ids == [10, 11, 12, IDS.bot, IDS.latent, IDS.latent, IDS.latent, IDS.eot]


def test_collate_aligns_the_first_thought_in_one_column() -> None:
    long = Tokenized(question=[10, 11, 12, 13, 14], steps=[[20]], answer=[30, 5])
    batch = collate(
        [build_example(ITEM, IDS, "coconut", 1, 1, 2), build_example(long, IDS, "coconut", 2, 1, 2)], IDS.pad
    )
    start = batch["thought_start"]
    assert start == 6
    assert batch["input_ids"][:, start].tolist() == [IDS.latent, IDS.latent]
    assert batch["input_ids"][:, start - 1].tolist() == [IDS.bot, IDS.bot]
    assert batch["attention_mask"][0, :2].tolist() == [0, 0]  # left padding of the shorter question
    assert batch["position_ids"][0, 2].item() == 0 and batch["position_ids"][1, 0].item() == 0
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_training_lowers_the_loss_and_generation_is_greedy(coconut_model: Path, tmp_path: Path) -> None:
    coconut, tokenizer = load(coconut_model, torch.device("cpu"))
    records = prosqa.generate(4, seed=0, n_nodes=4, min_hops=1)
    items = [tokenize(r, tokenizer) for r in records]
    examples = curriculum(items, coconut.ids, 1, 1, 2)
    metrics = train(coconut_model, examples, TrainConfig(epochs=6, learning_rate=3e-3, batch_size=4), tmp_path / "out")
    assert metrics["final_loss"] < metrics["first_loss"]
    trained, _ = load(tmp_path / "out", torch.device("cpu"))
    prompts = [build_prompt(item, trained.ids, "coconut", 2) for item in items[:3]]
    first = generate_all(trained, prompts, max_new_tokens=6, batch_size=2)
    assert first == generate_all(trained, prompts, max_new_tokens=6, batch_size=3)  # batching does not matter
    assert all(0 < len(out) <= 6 for out in first)


def test_final_answer_ignores_tokenizer_spacing() -> None:
    assert final_answer("Tom is a wumpus .\n # # # Tom is a yumpus .") == final_answer("Tom is a yumpus.")
    assert final_answer("### Tom is a yumpus.") != final_answer("### Tom is a wumpus.")
