"""The per-input reference for curation decisions (the set-based stage must agree with it).

Output self-consistency, input-perturbation consistency and the unfiltered ablation, one input at a
time in plain Python, as first written; `test_curation_equivalence.py` holds the set-based query to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from s2d_assets.distill.curate import Decision

KEPT = "kept"
NO_ANSWER = "no_parsed_answer"
TIE = "no_unique_majority"
LOW_AGREEMENT = "below_min_agreement"
POSITION_INCONSISTENT = "position_inconsistent"  # an outcome that is voted on but never kept


def _n(answers: Sequence[str | None], unparsed: str) -> int:
    """N of a vote share: every sample (``count``) or the samples that vote (``ignore``)."""
    return len(answers) if unparsed == "count" else sum(a is not None for a in answers)


def majority_vote(answers: Sequence[str | None], min_agreement: float, unparsed: str = "ignore") -> Decision:
    """Plurality vote over parsed answers; unparsed samples vote for nothing and count in N only with ``count``."""
    n_samples = len(answers)
    votes = Counter(a for a in answers if a is not None)
    ranked = votes.most_common()
    if not ranked:
        return Decision(None, {}, n_samples, 0.0, False, NO_ANSWER)
    winner, top = ranked[0]
    n = _n(answers, unparsed)
    agreement = top / n if n else 0.0
    if len(ranked) > 1 and ranked[1][1] == top:
        return Decision(None, dict(votes), n_samples, agreement, False, TIE)
    if winner == POSITION_INCONSISTENT:
        return Decision(None, dict(votes), n_samples, agreement, False, POSITION_INCONSISTENT)
    if agreement < min_agreement:
        return Decision(winner, dict(votes), n_samples, agreement, False, LOW_AGREEMENT)
    return Decision(winner, dict(votes), n_samples, agreement, True, KEPT)


# -- input-perturbation self-consistency ------------------------------------------------------
PERTURBATION_DISAGREEMENT = "perturbation_disagreement"


def perturbation_vote(
    variants: Mapping[int, Sequence[str | None]], min_agreement: float, combined: bool = False, unparsed: str = "ignore"
) -> Decision:
    """Keep an input when the majority answers of all its variants, mapped back, are one answer.

    ``variants`` maps variant id -> that variant's sample answers already mapped back to the
    original input (variant 0 is the input itself). Each variant votes with its unique
    majority; a tie, an unmappable answer or two different answers drop the input with
    ``perturbation_disagreement``. ``combined`` also requires the output self-consistency of
    variant 0 (with ``min_agreement``) and that its winner is the answer the variants agree on.
    """
    if 0 not in variants:
        raise ValueError("variant 0 (the input itself) is missing")
    pooled = [answer for answers in variants.values() for answer in answers]
    votes = dict(Counter(a for a in pooled if a is not None))
    n_samples = len(pooled)
    if not votes:
        return Decision(None, {}, n_samples, 0.0, False, NO_ANSWER)
    winners = {v: _unique_winner(answers) for v, answers in variants.items()}
    target = winners[0]
    if combined:
        base = majority_vote(variants[0], min_agreement, unparsed)
        if not base.kept:
            return Decision(base.answer, votes, n_samples, base.agreement, False, base.reason)
        target = base.answer
    agreement = votes.get(target, 0) / _n(pooled, unparsed) if target is not None else 0.0
    if target == POSITION_INCONSISTENT:
        return Decision(None, votes, n_samples, agreement, False, POSITION_INCONSISTENT)
    if target is None or any(winner != target for winner in winners.values()):
        return Decision(None, votes, n_samples, agreement, False, PERTURBATION_DISAGREEMENT)
    return Decision(target, votes, n_samples, agreement, True, KEPT)


def _unique_winner(answers: Sequence[str | None]) -> str | None:
    """A variant's vote: its unique most common answer (``None`` on a tie or without answers)."""
    ranked = Counter(a for a in answers if a is not None).most_common()
    if not ranked or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


def first_sample(answers: Sequence[str | None], unparsed: str = "ignore") -> Decision:
    """The unfiltered ablation: sample 0's answer, kept whenever it parsed."""
    n_samples = len(answers)
    answer = answers[0] if answers else None
    votes = dict(Counter(a for a in answers if a is not None))
    if answer is None:
        return Decision(None, votes, n_samples, 0.0, False, NO_ANSWER)
    agreement = votes[answer] / _n(answers, unparsed)
    if answer == POSITION_INCONSISTENT:
        return Decision(None, votes, n_samples, agreement, False, POSITION_INCONSISTENT)
    return Decision(answer, votes, n_samples, agreement, True, KEPT)


def curate_input(
    filter_kind: str,
    samples: Sequence[tuple[int, str | None]],
    answer_maps: Mapping[int, Mapping[str, str]],
    min_agreement: float,
    unparsed: str = "ignore",
) -> Decision:
    """One input's decision from its (variant id, parsed answer) samples under the chosen filter."""
    original = [answer for variant, answer in samples if variant == 0]
    if filter_kind == "self_consistency":
        return majority_vote(original, min_agreement, unparsed)
    if filter_kind == "none":
        return first_sample(original, unparsed)
    if filter_kind in ("perturbation", "combined"):
        grouped: dict[int, list[str | None]] = {}
        for variant, answer in samples:
            mapping = answer_maps.get(variant, {})
            mapped = answer if answer is None or not mapping else mapping.get(answer)
            grouped.setdefault(variant, []).append(mapped)
        return perturbation_vote(grouped, min_agreement, combined=filter_kind == "combined", unparsed=unparsed)
    raise ValueError(f"unknown curation filter {filter_kind!r}")
