"""Unsupervised curation: keep only the answers the model agrees with itself on.

Output self-consistency (Wang et al., 2022; the distillation paper's default filter): sample
N times, majority-vote over the parsed answers, keep the input when the winner is unique and
holds at least ``min_agreement`` of the N votes. Never reads the reference answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

KEPT = "kept"
NO_ANSWER = "no_parsed_answer"
TIE = "no_unique_majority"
LOW_AGREEMENT = "below_min_agreement"


@dataclass(frozen=True)
class Decision:
    answer: str | None
    votes: dict[str, int]
    n_samples: int
    agreement: float
    kept: bool
    reason: str


def majority_vote(answers: Sequence[str | None], min_agreement: float) -> Decision:
    """Vote over parsed answers; unparsed samples count toward N but vote for nothing."""
    n_samples = len(answers)
    votes = Counter(a for a in answers if a is not None)
    ranked = votes.most_common()
    if not ranked:
        return Decision(None, {}, n_samples, 0.0, False, NO_ANSWER)
    winner, top = ranked[0]
    agreement = top / n_samples if n_samples else 0.0
    if len(ranked) > 1 and ranked[1][1] == top:
        return Decision(None, dict(votes), n_samples, agreement, False, TIE)
    if agreement < min_agreement:
        return Decision(winner, dict(votes), n_samples, agreement, False, LOW_AGREEMENT)
    return Decision(winner, dict(votes), n_samples, agreement, True, KEPT)
