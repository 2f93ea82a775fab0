"""The optional ``coconut:`` section of an experiment file: task, model, curriculum, baselines.

Kept apart from ``experiment.py`` (which only references ``CoconutSpec``) so that the continuous
thought pipeline is one switch in the experiment file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from s2d_assets.config.base import Strict


class ProsQASpec(Strict):
    """ProsQA graphs (Coconut, Appendix A.2); the paper's graphs have about 23 nodes."""

    kind: Literal["prosqa"]
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    n_nodes: int = Field(12, ge=4, le=64)
    min_hops: int = Field(2, ge=1, description="shortest path from the entity to the correct answer, at least")


class ProntoQASpec(Strict):
    kind: Literal["prontoqa"]
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    hops: int = Field(5, ge=1, le=12)
    distractor_hops: int = Field(2, ge=0, le=12)


class ScratchSpec(Strict):
    """A small Llama initialised at random and trained on the synthetic data only (word-level tokenizer)."""

    hidden_size: int = Field(128, ge=8)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)

    @model_validator(mode="after")
    def _heads_divide(self) -> ScratchSpec:
        if self.hidden_size % self.heads:
            raise ValueError(f"scratch.hidden_size={self.hidden_size} must be a multiple of heads={self.heads}")
        return self


class CoconutTrainingSpec(Strict):
    epochs_per_stage: float = Field(3.0, gt=0, description="epochs of each curriculum stage, stage 0 (CoT) included")
    baseline_epochs: float | None = Field(
        None, gt=0, description="epochs of each baseline; default: the whole curriculum's epochs"
    )
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(
        1, ge=0, description="torch CPU threads, 0 = every core; a small model gains little from more on a busy machine"
    )


class CoconutSpec(Strict):
    task: Annotated[ProsQASpec | ProntoQASpec, Field(discriminator="kind")]
    model: Literal["scratch", "base"] = Field(
        "scratch", description="scratch: a small random Llama; base: the experiment's base model (embedded or path)"
    )
    scratch: ScratchSpec = ScratchSpec()
    thoughts_per_step: int = Field(1, ge=1, description="c: continuous thoughts that replace one language step")
    max_stage: int = Field(3, ge=1, description="stages 1..max_stage; inference uses max_stage·c thoughts")
    training: CoconutTrainingSpec = CoconutTrainingSpec()
    baselines: tuple[Literal["no_cot", "cot", "pause"], ...] = ("no_cot", "cot", "pause")
    max_new_tokens: int = Field(96, ge=1)
    eval_batch_size: int = Field(64, ge=1)

    @property
    def task_name(self) -> str:
        return self.task.kind

    @property
    def n_thoughts(self) -> int:
        return self.max_stage * self.thoughts_per_step

    def shifted(self, offset: int) -> CoconutSpec:
        """This section for a replicate ``offset`` seeds away: its own graphs and training order."""
        return self.model_copy(
            update={
                "task": self.task.model_copy(update={"seed": self.task.seed + offset}),
                "training": self.training.model_copy(update={"seed": self.training.seed + offset}),
            }
        )

    @property
    def baseline_epochs(self) -> float:
        return self.training.baseline_epochs or self.training.epochs_per_stage * (self.max_stage + 1)
