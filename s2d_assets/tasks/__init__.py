"""Tasks: reproducible input generation, answer parsing and scoring, one module each."""

from typing import Any

from s2d_assets.config.tasks import (
    CoinFlipSpec,
    FactualQASpec,
    Gsm8kSpec,
    LastLetterSpec,
    PairwiseJudgingSpec,
    SycophancySpec,
    UserTaskSpec,
)
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput
from s2d_assets.tasks.coin_flip import CoinFlipTask
from s2d_assets.tasks.factual_qa import FactualQATask
from s2d_assets.tasks.gsm8k import Gsm8kTask
from s2d_assets.tasks.judging import PairwiseJudgingTask
from s2d_assets.tasks.last_letter import LastLetterTask
from s2d_assets.tasks.sycophancy import SycophancyTask
from s2d_assets.tasks.user_task import UserTask


def build_task(spec: Any) -> Task:
    if isinstance(spec, LastLetterSpec):
        return LastLetterTask(spec)
    if isinstance(spec, CoinFlipSpec):
        return CoinFlipTask(spec)
    if isinstance(spec, SycophancySpec):
        return SycophancyTask(spec)
    if isinstance(spec, Gsm8kSpec):
        return Gsm8kTask(spec)
    if isinstance(spec, FactualQASpec):
        return FactualQATask(spec)
    if isinstance(spec, UserTaskSpec):
        return UserTask(spec)
    if isinstance(spec, PairwiseJudgingSpec):
        return PairwiseJudgingTask(spec)
    raise TypeError(f"no task for spec {type(spec).__name__}")


__all__ = ["EVAL", "TRAIN", "Task", "TaskInput", "build_task"]
