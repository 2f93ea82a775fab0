"""What was read of a system's answers: parsed, cut off at the token budget, or neither.

One definition for the evaluation stage (its ``evaluations`` columns and metadata), ``s2d results``
and the results document. A chain's ``generations.finish_reason`` is ``stop`` (it ended on its own),
``length`` (cut off at its token budget) or NULL (unknown: the engine did not say, or the row predates
the column). Unknown is never read as ``stop``: while any answer's end is unknown the truncation rate
is not given ("n/a"), and ``n_truncated`` counts only the answers whose end is known.

Every answer is one of three outcomes, which add up to all items:

- parsed: the task's parser found an answer (a chain cut off may still have stated one);
- unparsed, truncated: cut off before it stated a parsable answer;
- unparsed, not truncated: it ended on its own without a parsable answer.

The truncation rate is the share of all answers cut off, parsed or not. Accuracy over the parsed
answers is scored on a subset the system chose (the items it gave an answer to), so it is shown
beside plain accuracy (which counts an unparsed answer as wrong), never instead of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LENGTH = "length"  # finish_reason of a chain cut off at its token budget
NOT_KNOWN = "n/a"


@dataclass
class Reading:
    """Counts of one system's answers by outcome (see the module docstring); ``add`` one answer at a time."""

    n: int = 0
    parsed: int = 0
    correct_parsed: int = 0
    truncated: int = 0  # cut off (finish_reason 'length'), parsed or not
    unparsed_truncated: int = 0
    unknown: int = 0  # answers whose finish_reason is NULL

    def add(self, parsed: bool, correct: bool, finish_reason: str | None) -> None:
        self.n += 1
        self.parsed += parsed
        self.correct_parsed += parsed and correct
        if finish_reason is None:
            self.unknown += 1
        elif finish_reason == LENGTH:
            self.truncated += 1
            self.unparsed_truncated += not parsed

    @classmethod
    def of(cls, answers: Sequence[Any], correct: Sequence[bool], finish_reasons: Sequence[str | None]) -> Reading:
        """The counts of aligned answers (None = unparsed), their correctness and their finish reasons."""
        reading = cls()
        for answer, right, finish in zip(answers, correct, finish_reasons, strict=True):
            reading.add(answer is not None, bool(right), finish)
        return reading

    @property
    def parse_rate(self) -> float | None:
        return self.parsed / self.n if self.n else None

    @property
    def accuracy_parsed(self) -> float | None:
        return self.correct_parsed / self.parsed if self.parsed else None

    @property
    def ends_known(self) -> bool:
        return self.unknown == 0

    @property
    def truncation_rate(self) -> float | None:
        """Share of all answers cut off; None while any answer's end is unknown."""
        return self.truncated / self.n if self.n and self.ends_known else None

    @property
    def unparsed_not_truncated(self) -> int | None:
        """Answers that ended on their own without a parsable answer; None while any end is unknown (unless
        every answer parsed)."""
        return self.n - self.parsed - self.unparsed_truncated if self.ends_known or self.parsed == self.n else None

    def columns(self) -> dict[str, Any]:
        """The ``evaluations`` columns (``core/warehouse.py``); counts of ends are NULL when none is known."""
        any_known = self.unknown < self.n
        return {
            "n_parsed": self.parsed,
            "accuracy_parsed": self.accuracy_parsed,
            "n_truncated": self.truncated if any_known else None,
            "n_unparsed_truncated": self.unparsed_truncated if any_known else None,
            "n_finish_unknown": self.unknown,
            "truncation_rate": self.truncation_rate,
        }

    # -- as text -------------------------------------------------------------------------------------
    def parsed_text(self) -> str:
        return NOT_KNOWN if not self.n else f"{100 * self.parsed / self.n:.1f}%"

    def accuracy_parsed_text(self) -> str:
        """``a% of p`` (the p answers that parsed); ``—`` when none did."""
        accuracy = self.accuracy_parsed
        return "—" if accuracy is None else f"{100 * accuracy:.1f}% of {self.parsed}"

    def truncated_text(self) -> str:
        """The truncation rate; ``n/a`` when no end is known, with the unknown count when some are."""
        if not self.n or self.unknown == self.n:
            return NOT_KNOWN
        if self.unknown:
            known = self.n - self.unknown
            return f"{NOT_KNOWN} ({self.truncated} of {known} known cut off, {self.unknown} unknown)"
        return f"{100 * self.truncated / self.n:.1f}%"

    def unparsed_text(self) -> str:
        """Unparsed answers that were not cut off (``n/a`` while any end is unknown: they may have been)."""
        rest = self.unparsed_not_truncated
        if rest is None:
            return NOT_KNOWN if not self.n else f"{NOT_KNOWN} (unparsed {100 * (self.n - self.parsed) / self.n:.1f}%)"
        return f"{100 * rest / self.n:.1f}%"


# -- in the results document's tables ----------------------------------------------------------------------
READ_HEADER = ("accuracy on parsed", "parsed", "truncated", "unparsed, not truncated")
READ_NOTE = (
    "What was read: accuracy on parsed is over the answers that parsed (a subset the system chose, so it is "
    "shown beside accuracy, never instead of it), with their number; parsed is their share of all answers; "
    "truncated the share cut off at the token budget, parsed or not; unparsed, not truncated the share that "
    "ended on its own without a parsable answer. n/a: the engine did not record how the answers ended."
)


def read_cells(reading: Reading) -> list[str]:
    """The ``READ_HEADER`` cells of a system's reading, as the results document shows them."""
    return [reading.accuracy_parsed_text(), reading.parsed_text(), reading.truncated_text(), reading.unparsed_text()]
