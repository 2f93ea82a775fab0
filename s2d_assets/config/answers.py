"""Where ``answer: constrained`` applies: checked when the experiment file loads.

A constrained answer needs three things, each refused at load with the field named: a method whose
answer step states only the answer (System 1, zero-shot CoT's extraction), tasks that declare an
answer set (closed-form answers), and an engine that can constrain decoding.
"""

from __future__ import annotations

from typing import Any

from s2d_assets.config.methods import METHODS
from s2d_assets.config.tasks import TASKS
from s2d_assets.core.answer_set import CONSTRAINED

ANSWER_HELP = (
    "free: the model writes its final answer freely (the paper's protocol); constrained: the final answer "
    "step chooses among the task's declared answers (yes/no, true/false, option letters, a pattern)"
)


def constrainable(task: Any) -> bool:
    """Whether ``answer: constrained`` applies to a task (its answer set for an input without metadata)."""
    return task.answer_set({}) is not None


def answer_mode_problems(experiment: Any) -> list[str]:
    """Why the experiment's constrained answers cannot run (empty when they can, or when none is asked for)."""
    where = [f"methods.{name}.answer" for name, spec in experiment.methods.items() if spec.answer == CONSTRAINED]
    if experiment.evaluation.system1_answer == CONSTRAINED:
        where.append("evaluation.system1_answer")
    if not where:
        return []
    problems = []
    for name, spec in experiment.methods.items():
        if spec.answer == CONSTRAINED:
            try:
                METHODS.implementation(spec.kind).with_answer(CONSTRAINED)
            except ValueError as error:
                problems.append(f"methods.{name}.answer: {error}")
    free_text = [
        name for name, spec in experiment.tasks.items() if not constrainable(TASKS.implementation(spec.kind)(spec))
    ]
    if free_text:
        problems.append(
            f"{where[0]}: constrained, but task(s) {', '.join(free_text)} have free-text answers with no answer "
            "set to choose among (use answer: free, or a closed-form task)"
        )
    engine_problem = experiment.engine.constrained_answer_problem()
    if engine_problem:
        problems.append(f"{where[0]}: constrained, but {engine_problem}")
    return problems
