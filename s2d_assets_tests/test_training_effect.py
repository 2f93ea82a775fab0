"""Training has an effect: after SFT on a pool whose answer is always "zebra", the distilled model says it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2d_assets.config.experiment import TrainingSpec
from s2d_assets.core.errors import StateError
from s2d_assets.distill.sft import train_sft
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine, load_model
from s2d_assets.methods import direct_prompt

NAMES = ["Ann", "Bob", "Cy", "Dee", "Eve", "Finn", "Gus", "Hal", "Ivy", "Jo", "Kit", "Lu", "Max", "Ned", "Ola", "Pia"]
TRAIN = [
    f"A coin is heads up. {a} flips the coin. {b} does not flip the coin. Is the coin still heads up?"
    for a, b in zip(NAMES, NAMES[1:] + NAMES[:1], strict=True)
]
HELD_OUT = [
    f'Take the last letters of the words in "{a} {b}" and concatenate them.'
    for a, b in zip(NAMES, NAMES[3:], strict=False)
]


def _zebra_rate(model_dir: Path, adapter: Path | None, questions: list[str]) -> float:
    engine = TransformersEngine.from_dir(model_dir, "tiny", dtype="float32", adapter_dir=adapter)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=6)  # greedy
    completions = engine.generate([GenerationRequest.user(direct_prompt(q), params) for q in questions])
    return sum("zebra" in c.text.lower() for c in completions) / len(questions)


@pytest.mark.timeout(180)
def test_distilled_answers_move_towards_the_pool(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = _zebra_rate(tiny_model_dir, None, TRAIN + HELD_OUT)
    # LoRA, as the pipeline trains; 8 optimiser steps (30-60 s on 2 shared cores, most of it TRL's per-step cost).
    spec = TrainingSpec(
        mode="lora", epochs=4, learning_rate=1e-2, batch_size=8, max_length=256, lora_r=8, lora_alpha=16
    )
    out = tmp_path / "adapter"
    train_sft(tiny_model_dir, [(direct_prompt(q), "zebra") for q in TRAIN], spec, out)
    after_train = _zebra_rate(tiny_model_dir, out, TRAIN)
    after_held_out = _zebra_rate(tiny_model_dir, out, HELD_OUT)
    assert before == 0.0
    # greedy decoding: the trained prompts and unseen ones (another task's wording) both say it now
    assert after_train >= 0.8 and after_held_out >= 0.5, (after_train, after_held_out)


def test_an_adapter_folder_without_its_config_is_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(StateError, match=rf"{folder}.*adapter_config.json"):
        load_model(tiny_model_dir, torch.float32, folder)
