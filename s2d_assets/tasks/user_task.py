"""A task from a user's file (JSONL, JSON, Parquet, CSV or a `datasets` directory).

The experiment declares the answer type, which decides parsing and scoring: ``exact`` (the
normalised first line equals the reference), ``choice`` (an option letter), ``number``
(numeric equality) or ``free_text`` (the normalised reference appears in the answer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import UserTaskSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.tasks.answers import (
    NUMBER_ANSWER,
    canonical_number,
    normalize_text,
    options,
    parse_choice,
    parse_number,
    short_answer,
)
from s2d_assets.tasks.base import DEFAULT_ANSWER_FORMAT, EVAL, TRAIN, Task, TaskInput, input_id
from s2d_assets.tasks.sources import Source, file_source
from s2d_assets.tasks.user_files import TaskFileError, check_conflicts, read_rows, require_text, resolve_path

# The answer-format phrase of each answer type (``free_text`` and ``exact``: the default).
USER_ANSWER_FORMATS = {"number": "(a number)", "choice": "(the option letter)"}


@dataclass(frozen=True)
class UserTask(Task):
    spec: UserTaskSpec
    kind: str = "user"

    def sources(self) -> list[Source]:
        return [file_source(self.spec.path, "the task file")]

    @property
    def answer_format(self) -> str:
        return USER_ANSWER_FORMATS.get(self.spec.answer_type, DEFAULT_ANSWER_FORMAT)

    def _check(self, path: Any, number: int, question: str, answer: str) -> str:
        kind = self.spec.answer_type
        if kind == "number":
            value = canonical_number(answer)
            if value is None:
                raise TaskFileError(
                    f"{path}: row {number}: field {self.spec.answer_field!r} is not a finite number: {answer!r}"
                )
            return value
        if kind == "choice":
            letter = answer.strip().strip("()").strip().upper()
            if letter not in options(question):
                raise TaskFileError(
                    f"{path}: row {number}: answer {answer!r} is not one of the question's '(X) ...' option lines"
                )
            return letter
        return answer.strip()

    def build_inputs(self) -> list[TaskInput]:
        path = resolve_path(self.spec.path)
        rows = read_rows(path)
        require_text(path, rows, (self.spec.question_field, self.spec.answer_field))
        items = []
        for number, row in rows:
            question = str(row[self.spec.question_field])
            items.append((number, question, self._check(path, number, question, str(row[self.spec.answer_field]))))
        unique = [(question, answer) for _, question, answer in check_conflicts(path, items)]
        wanted = self.spec.train_size + self.spec.eval_size
        if len(unique) < wanted:
            raise TaskFileError(
                f"{path}: {len(unique)} distinct questions, train_size + eval_size = {wanted} asked for"
            )
        random.Random(self.spec.seed).shuffle(unique)
        return [
            TaskInput(
                input_id(self.kind, question),
                TRAIN if index < self.spec.train_size else EVAL,
                question,
                answer,
                self.meta_for_prompt(question),
            )
            for index, (question, answer) in enumerate(unique[:wanted])
        ]

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        return {"options": options(prompt)} if self.spec.answer_type == "choice" else {}

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet | None:
        """By the declared answer type: a number, or the question's option letters; free text is not constrainable."""
        if self.spec.answer_type == "number":
            return NUMBER_ANSWER
        if self.spec.answer_type == "choice":
            return AnswerSet.of(*(sorted(meta.get("options") or {}) or ("A", "B")))
        return None

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        kind = self.spec.answer_type
        if kind == "number":
            return parse_number(text)
        if kind == "choice":
            return parse_choice(text, dict(meta.get("options") or {}))
        if kind == "exact":
            answer = short_answer(text)
            return normalize_text(answer) if answer else None
        return text.strip() or None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        if answer is None:
            return False
        kind = self.spec.answer_type
        if kind == "number":
            return canonical_number(answer) == canonical_number(reference)
        if kind == "choice":
            return answer.strip().strip("()").upper() == reference.strip().strip("()").upper()
        if kind == "exact":
            return normalize_text(answer) == normalize_text(reference)
        gold = normalize_text(reference)
        return bool(gold) and gold in normalize_text(answer)
