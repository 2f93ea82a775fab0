"""The experiment file's ``training`` section, and ``model.teach`` (a taught System 2), which trains the same way."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from s2d_assets.config.base import Strict
from s2d_assets.config.tasks import TaskSpec


class TrainingSpec(Strict):
    mode: Literal["lora", "full"] = "lora"
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(128, ge=16)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: fp32 without native bf16; with it the measured faster per mode (core/hardware.py)"
    )
    # Left out of dumps when 1, so the single-process default keeps every existing training version.
    workers: int = Field(
        1,
        ge=1,
        exclude_if=lambda v: v == 1,
        description="data-parallel training workers: more than 1 runs the same SFT under Ray Train (the ray extra; "
        "the cluster is engine.ray's); batch_size stays the global batch",
    )


class TeachSpec(Strict):
    """A taught System 2 (``distill/teach.py``): traces of ``tasks``' train inputs, answering ``method``'s first prompt.

    The teaching inputs must be disjoint from the experiment's own (e.g. coin flip with other numbers of
    people): the pipeline then runs unchanged, with the taught model as its base model.
    """

    tasks: dict[str, TaskSpec] = Field(min_length=1, description="task families whose train inputs are traced")
    method: str = Field("cot_zero_shot", description="the method kind whose first step's prompt the traces answer")
    training: TrainingSpec = TrainingSpec(mode="lora", epochs=2.0, learning_rate=5e-4, max_length=192)
