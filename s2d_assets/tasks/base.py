"""What every task provides: reproducible inputs, answer parsing and scoring."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.fingerprint import content_hash

if TYPE_CHECKING:
    from s2d_assets.tasks.perturbation import Variant

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


class Task:
    """What the pipeline asks of a task, with the defaults of a task that declares nothing more.

    A task is a frozen dataclass over its spec (``spec``; ``kind`` the spec's kind) that subclasses
    ``Task``: ``build_inputs``, ``parse_answer`` and ``is_correct`` are its own; every other capability
    has its default here, so the pipeline calls each one by name (a misspelt override fails loudly).
    """

    kind: str

    @property
    def answer_format(self) -> str:
        """The answer set as a phrase for templates' ``{answer_format}``, e.g. "(yes or no)"."""
        return DEFAULT_ANSWER_FORMAT

    def build_inputs(self) -> list[TaskInput]:
        raise NotImplementedError(f"task {self.kind} builds no inputs")

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        raise NotImplementedError(f"task {self.kind} parses no answers")

    def is_correct(self, answer: str | None, reference: str) -> bool:
        raise NotImplementedError(f"task {self.kind} scores no answers")

    def sources(self) -> list[Any]:
        """Every file or data package the task reads to build its inputs (its inbox aside): ``tasks.sources.Source``
        values (not imported here: sources reads the inbox, which reads this module)."""
        return []

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        """The parse metadata of an input that arrived as a bare prompt (an inbox row, a perturbed variant)."""
        return {}

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet | None:
        """The answers a constrained final answer chooses among (None: free text, not constrainable)."""
        return None

    def perturb(self, prompt: str, meta: dict[str, Any]) -> list[Variant]:
        """The input's perturbed variants, each with its answer map back to the original (none by default)."""
        return []

    def teaching_trace(self, meta: dict[str, Any]) -> str | None:
        """A programmatic reasoning trace for an input, without its final answer (``model.teach``, which adds
        the answer as the method states it); None when the task has none."""
        return None

    # Builds its inputs with the base model (e.g. judging pairs answered under two settings).
    needs_base_model: bool = False
    # Judges pairs of answers: System 1 gets the judge instruction, and evaluation also takes the
    # verdicts in both orders (position consistency).
    judges_pairs: bool = False

    def with_answerer(self, factory: Callable[[], Any]) -> Task:
        """The task with the base model's answerer, for a task that ``needs_base_model``."""
        return self


def answer_set(task: Task, meta: dict[str, Any]) -> AnswerSet | None:
    """The answers a constrained final answer chooses among for an input with ``meta`` (None: not constrainable).
    The task's own parser must read each answer back."""
    return task.answer_set(meta)


def prompt_meta(task: Task, prompt: str) -> dict[str, Any]:
    """The parse metadata of an input that arrived as a bare prompt (an inbox row)."""
    return dict(task.meta_for_prompt(prompt))


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
