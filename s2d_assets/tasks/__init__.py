"""Tasks: reproducible input generation, answer parsing and scoring, one module each."""

from s2d_assets.experiment import CoinFlipSpec, LastLetterSpec
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput
from s2d_assets.tasks.coin_flip import CoinFlipTask
from s2d_assets.tasks.last_letter import LastLetterTask


def build_task(spec: LastLetterSpec | CoinFlipSpec) -> Task:
    if isinstance(spec, LastLetterSpec):
        return LastLetterTask(spec)
    if isinstance(spec, CoinFlipSpec):
        return CoinFlipTask(spec)
    raise TypeError(f"no task for spec {type(spec).__name__}")


__all__ = ["EVAL", "TRAIN", "Task", "TaskInput", "build_task"]
