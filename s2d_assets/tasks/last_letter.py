"""Last-letter concatenation (Wei et al., 2022): 'Elon Musk' -> 'nk'."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import LastLetterSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.tasks.base import Task, TaskInput, split_unique
from s2d_assets.tasks.names_data import first_names, last_names
from s2d_assets.tasks.sources import NAMES, Source, package_source

TEMPLATE = 'Take the last letters of the words in "{words}" and concatenate them.'

# Candidates, in the order a reader would trust them: quoted or bold text, then "is X"/": X".
_QUOTED = re.compile(r"[\"'“”‘’*`]+\s*([A-Za-z]{1,12})\s*[\"'“”‘’*`]+")
_AFTER_MARKER = re.compile(
    r"(?=(?:\bis|\bare|\banswer|\bresult|:|=)\s*[\"'“*`]*\s*([A-Za-z]{1,12})\b)", re.IGNORECASE
)  # a lookahead, so "the answer is nk" yields both "is" and "nk"
_FILLER = {"is", "are", "the", "a", "an", "it", "to", "of", "so", "we", "that", "this"}
_BARE = re.compile(r"^\W*([A-Za-z]{1,12})\W*$")


def concatenate_last_letters(words: list[str]) -> str:
    return "".join(word[-1] for word in words).lower()


@dataclass(frozen=True)
class LastLetterTask(Task):
    spec: LastLetterSpec
    kind: str = "last_letter"

    def sources(self) -> list[Source]:
        return [package_source(NAMES, "census first and last names")]

    @property
    def answer_format(self) -> str:
        return "(the letters joined)"

    def build_inputs(self) -> list[TaskInput]:
        rng = random.Random(self.spec.seed)
        firsts, lasts = first_names(self.spec.name_pool), last_names(self.spec.name_pool)
        wanted = self.spec.train_size + self.spec.eval_size

        def items():  # type: ignore[no-untyped-def]
            for _ in range(wanted * 20):
                words = [rng.choice(firsts) for _ in range(self.spec.n_words - 1)] + [rng.choice(lasts)]
                meta: dict[str, Any] = {"words": words, "n_words": len(words)}
                yield TEMPLATE.format(words=" ".join(words)), concatenate_last_letters(words), meta

        return split_unique(self.kind, list(items()), self.spec.train_size, self.spec.eval_size)

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        quoted = re.search(r'"([^"]+)"', prompt)
        words = quoted.group(1).split() if quoted else []
        return {"words": words, "n_words": len(words) or self.spec.n_words}

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet:
        """One lower-case letter per word."""
        return AnswerSet(regex=f"[a-z]{{{int(meta.get('n_words', self.spec.n_words))}}}")

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        n_words = int(meta.get("n_words", self.spec.n_words))
        bare = _BARE.match(text)
        if bare:
            return bare.group(1).lower()
        words = {w.lower() for w in meta.get("words", [])}
        for pattern in (_QUOTED, _AFTER_MARKER):
            found = [m.lower() for m in pattern.findall(text) if m.lower() not in words | _FILLER]
            exact = [m for m in found if len(m) == n_words]
            if exact:
                return exact[-1]
            if found and pattern is _QUOTED:
                return found[-1]
        return None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and answer.strip().lower() == reference.strip().lower()
