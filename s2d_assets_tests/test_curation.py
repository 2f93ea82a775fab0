from __future__ import annotations

from s2d_assets.distill.curate import KEPT, LOW_AGREEMENT, NO_ANSWER, TIE
from s2d_assets_tests.curation_sql import majority_vote


def test_clear_majority_is_kept() -> None:
    decision = majority_vote(["nk", "nk", "nk", "ab", None, "nk", "nk", "xy"], min_agreement=0.5)
    assert decision.kept and decision.reason == KEPT
    assert decision.answer == "nk"
    assert decision.votes == {"nk": 5, "ab": 1, "xy": 1}
    assert decision.agreement == 5 / 8
    assert decision.n_samples == 8


def test_tie_has_no_winner() -> None:
    decision = majority_vote(["yes", "no", "yes", "no"], min_agreement=0.25)
    assert not decision.kept and decision.reason == TIE and decision.answer is None


def test_plurality_below_threshold_is_dropped_but_recorded() -> None:
    decision = majority_vote(["a", "a", "b", "c", None, None, None, None], min_agreement=0.5)
    assert not decision.kept and decision.reason == LOW_AGREEMENT
    assert decision.answer == "a" and decision.agreement == 0.25


def test_unparsed_samples_count_toward_n_but_do_not_vote() -> None:
    assert majority_vote([None, None], 0.5).reason == NO_ANSWER
    decision = majority_vote(["yes", None, None, None], 0.5)
    assert decision.agreement == 0.25 and not decision.kept


def test_threshold_is_inclusive() -> None:
    assert majority_vote(["yes", "yes", "no", "no", "yes", "no", "yes", "yes"], 5 / 8).kept
