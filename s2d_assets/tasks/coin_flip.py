"""Coin flip state tracking (Wei et al., 2022): is the coin still heads up after the flips?"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import CoinFlipSpec
from s2d_assets.tasks.base import TaskInput, split_unique
from s2d_assets.tasks.names_data import first_names

# "yes"/"no" as an answer: followed by punctuation or the end ("No, it flipped", "the answer is no"),
# not as a determiner ("no change", "no one flips").
_ANSWER_WORD = re.compile(r"\b(yes|no)\b(?=\s*(?:[^\w\s]|$))", re.IGNORECASE)
_STATE = re.compile(r"\b(not\s+(?:still\s+)?)?(heads|tails)\b", re.IGNORECASE)
_QUESTION = re.compile(r"[^.!?\n]*\?")  # a restated question ("Is the coin still heads up?") is no verdict
_MEANING = {"yes": "yes", "heads": "yes", "no": "no", "tails": "no"}


@dataclass(frozen=True)
class CoinFlipTask:
    spec: CoinFlipSpec
    kind: str = "coin_flip"

    def build_inputs(self) -> list[TaskInput]:
        rng = random.Random(self.spec.seed)
        people = first_names(self.spec.name_pool)
        wanted = self.spec.train_size + self.spec.eval_size

        def items():  # type: ignore[no-untyped-def]
            for _ in range(wanted * 20):
                names = rng.sample(people, self.spec.n_people)
                flips = [rng.random() < 0.5 for _ in names]
                sentences = [
                    f"{n} flips the coin." if f else f"{n} does not flip the coin."
                    for n, f in zip(names, flips, strict=True)
                ]
                prompt = "A coin is heads up. " + " ".join(sentences) + " Is the coin still heads up?"
                answer = "yes" if sum(flips) % 2 == 0 else "no"
                yield prompt, answer, {"names": names, "flips": flips}

        return split_unique(self.kind, list(items()), self.spec.train_size, self.spec.eval_size)

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        return {}

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        """The verdict the text states last: a "yes"/"no" answer, else the coin's last stated side.

        A stated yes/no answer outranks the sides named while reasoning; a negated side
        ("not heads up") is the other side.
        """
        text = _QUESTION.sub(" ", text)
        answers = _ANSWER_WORD.findall(text)
        if answers:
            return answers[-1].lower()
        states = []
        for negated, side in _STATE.findall(text):
            meaning = _MEANING[side.lower()]
            states.append(("no" if meaning == "yes" else "yes") if negated else meaning)
        return states[-1] if states else None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and answer.strip().lower() == reference.strip().lower()
