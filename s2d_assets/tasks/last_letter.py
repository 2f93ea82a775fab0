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

_LETTERS = r"[^\W\d_]+"  # one letter string (any alphabet), no digits, spaces or hyphens
_QUOTED = r"[\"'“”‘’`*\[]+\s*([^\"'“”‘’`*\]\n]+?)\s*[\"'“”‘’`*\]]+"
_ENDS_LINE = r"(?=[.!,;]?[ \t]*(?:\n|$))"
# A restated question ("Take the last letters of ... and concatenate them") is no answer.
_RESTATED = re.compile(r"take the last letters? of[^\n]*?(?:concatenate them|$)", re.IGNORECASE | re.MULTILINE)
# Stated answers: "the (final) answer (to the question) is X", "is the letter h", "... into X",
# X quoted or ending its line; an answer that is a phrase ("Jennie Nash") is a stated non-answer.
_ANSWER = re.compile(
    r"\banswer(?:\s+to\s+[^\n]*?)?\s*(?:is|:|would\s+be)\s*(?:indeed\s+|actually\s+)?[*:\s]*"
    rf"(?:{_QUOTED}|({_LETTERS}){_ENDS_LINE})|\b(?:is|are)\s+the\s+letters?\s+({_LETTERS})\b|\binto\s+({_LETTERS})\b",
    re.IGNORECASE,
)
_NAMED = re.compile(rf"(?:\bis|\bare|:)\s*{_QUOTED}(?=\s*(?:[.!,;)]|$))", re.IGNORECASE)  # 'are "nk".'
_WORD_RESULT = re.compile(rf"^\W*({_LETTERS})\s*[:=]\s*({_LETTERS})\W*$", re.MULTILINE)  # "Graham = GRAH"
_BARE = re.compile(rf"^[\s\"'“”`*]*({_LETTERS})[\s\"'“”`*.!]*$")
_FILLER = {"is", "are", "the", "a", "an", "it", "to", "of", "so", "we", "that", "this"}


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
        """The letter string the text states: its last stated answer, else one it names or writes alone.

        The words of the question may be the answer ("The answer is: Hogan"); a restated question
        states none, and a stated answer that is not one letter string (two words) is no answer.
        """
        text = _RESTATED.sub(" ", text)
        stated = [next(g for g in m.groups() if g is not None).strip() for m in _ANSWER.finditer(text)]
        single = [a.lower() for a in stated if re.fullmatch(_LETTERS, a) and a.lower() not in _FILLER]
        if single:
            return single[-1]
        if stated:
            return None
        words = {w.lower() for w in meta.get("words", [])}
        named = [m.lower() for m in _NAMED.findall(text) if re.fullmatch(_LETTERS, m)]
        results = [result.lower() for word, result in _WORD_RESULT.findall(text) if word.lower() in words]
        if named or results:
            return (named or results)[-1]
        first_line = text.strip().split("\n", 1)[0]
        bare = _BARE.match(first_line)
        return bare.group(1).lower() if bare else None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and answer.strip().lower() == reference.strip().lower()
