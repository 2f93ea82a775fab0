"""Tasks: reproducible input generation, answer parsing and scoring, one module each.

Each kind's spec class and implementation are registered in ``config/tasks.py`` (``TASKS``).
"""

from typing import Any

from s2d_assets.config.tasks import TASKS
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput


def build_task(spec: Any) -> Task:
    """The task the spec's ``kind`` names, over the spec."""
    return TASKS.implementation(spec.kind)(spec)


__all__ = ["EVAL", "TASKS", "TRAIN", "Task", "TaskInput", "build_task"]
