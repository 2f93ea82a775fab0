"""What every task provides: reproducible inputs, answer parsing and scoring."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Protocol

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.fingerprint import content_hash

TRAIN = "train"  # used unlabelled: curation never reads `reference`
EVAL = "eval"


@dataclass(frozen=True)
class TaskInput:
    input_id: str
    split: str
    prompt: str
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)


def normalize_prompt(prompt: str) -> str:
    """A prompt as compared for duplicates and eval leakage: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def input_id(task_kind: str, prompt: str) -> str:
    """Content-derived id, so the same question always has the same id."""
    return f"{task_kind}-{content_hash(prompt, length=12)}"


# What a task's answer looks like, as a method's extraction cue names it ("Therefore, the answer
# {answer_format} is"). Each task states its own; this is for a task with no closed answer set.
DEFAULT_ANSWER_FORMAT = "(in a few words)"


class Task(Protocol):
    kind: str

    @property
    def answer_format(self) -> str:
        """The answer set as a phrase for templates' ``{answer_format}``, e.g. "(yes or no)"."""
        ...

    def build_inputs(self) -> list[TaskInput]: ...

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None: ...

    def is_correct(self, answer: str | None, reference: str) -> bool: ...


def answer_set(task: Task, meta: dict[str, Any]) -> AnswerSet | None:
    """The answers a constrained final answer chooses among for an input with ``meta``.

    Closed-form tasks define ``answer_set(meta)``; a task without it (or returning None, e.g.
    free-text answers) is not constrainable. The task's own parser must read each answer back.
    """
    declared = getattr(task, "answer_set", None)
    return declared(meta) if declared else None


def constrainable(task: Task) -> bool:
    """Whether ``answer: constrained`` applies to the task (its answer set for an input without metadata)."""
    return answer_set(task, {}) is not None


def prompt_meta(task: Task, prompt: str) -> dict[str, Any]:
    """The parse metadata of an input that arrived as a bare prompt (an inbox row).

    Tasks whose parser needs metadata (e.g. last-letter's word count) define ``meta_for_prompt``.
    """
    meta_for_prompt = getattr(task, "meta_for_prompt", None)
    return dict(meta_for_prompt(prompt)) if meta_for_prompt else {}


def split_unique(
    kind: str, items: list[tuple[str, str, dict[str, Any]]], train_size: int, eval_size: int
) -> list[TaskInput]:
    """Assign de-duplicated (prompt, reference, meta) items to train, then eval."""
    seen: set[str] = set()
    inputs: list[TaskInput] = []
    for prompt, reference, meta in items:
        if prompt in seen:
            continue
        seen.add(prompt)
        split = TRAIN if len(inputs) < train_size else EVAL
        inputs.append(TaskInput(input_id(kind, prompt), split, prompt, reference, meta))
        if len(inputs) == train_size + eval_size:
            return inputs
    raise ValueError(
        f"task {kind}: could only make {len(inputs)} distinct inputs of the {train_size + eval_size} asked for; "
        "raise name_pool or lower the sizes"
    )
