"""Coin flip state tracking (Wei et al., 2022): is the coin still heads up after the flips?"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import CoinFlipSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.tasks.base import Task, TaskInput, split_unique
from s2d_assets.tasks.names_data import first_names
from s2d_assets.tasks.sources import NAMES, Source, package_source

# "yes"/"no" as an answer: followed by punctuation or the end ("No, it flipped", "the answer is no"),
# not as a determiner ("no change", "no one flips").
_ANSWER_WORD = re.compile(r"\b(yes|no)\b(?=[ \t]*(?:[^\w\s]|\n|$))", re.IGNORECASE)
_STATE = re.compile(r"\b(not\s+(?:still\s+)?)?(heads|tails)\b", re.IGNORECASE)
# Not verdicts: a restated question ("Is the coin still heads up?") or premise ("A coin is heads
# up."), a disjunction ("heads or tails", "yes or no"), and a condition ("if it lands on heads", "when both flip it").
_NOT_VERDICTS = re.compile(
    r"[^.!?\n]*\?|\bA coin is heads up\b|\b(?:heads|tails|yes|no)\W*(?:\s+up)?\s+or\s+\W*(?:heads|tails|yes|no)\b"
    r"|[^.!?\n]*\b(?:if|when|either|whether)\b[^.!?\n]*",
    re.IGNORECASE,
)
_MEANING = {"yes": "yes", "heads": "yes", "no": "no", "tails": "no"}


@dataclass(frozen=True)
class CoinFlipTask(Task):
    spec: CoinFlipSpec
    kind: str = "coin_flip"

    def sources(self) -> list[Source]:
        return [package_source(NAMES, "census first and last names")]

    @property
    def answer_format(self) -> str:
        return "(yes or no)"

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

    def teaching_trace(self, meta: dict[str, Any]) -> str:
        """The step-by-step reasoning of an input, written out programmatically (a taught System 2's lessons)."""
        state, steps = "heads", ["The coin starts heads up."]
        for name, flipped in zip(meta["names"], meta["flips"], strict=True):
            if flipped:
                state = "tails" if state == "heads" else "heads"
                steps.append(f"{name} flips the coin, so it is now {state} up.")
            else:
                steps.append(f"{name} does not flip the coin, so it is still {state} up.")
        return " ".join(steps) + f" The coin ends {state} up."

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet:
        return AnswerSet.of("yes", "no")

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        """The last verdict the text states: a "yes"/"no" answer or the side the coin is on.

        A negated side ("not heads up") is the other side.
        """
        text = _NOT_VERDICTS.sub(" ", text)
        verdicts = [(m.start(), m.group(1).lower()) for m in _ANSWER_WORD.finditer(text)]
        for m in _STATE.finditer(text):
            meaning = _MEANING[m.group(2).lower()]
            verdicts.append((m.start(), ("no" if meaning == "yes" else "yes") if m.group(1) else meaning))
        return max(verdicts)[1] if verdicts else None

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and answer.strip().lower() == reference.strip().lower()
