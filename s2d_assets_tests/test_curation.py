from __future__ import annotations

import pytest

from s2d_assets.config.experiment import CurationSpec
from s2d_assets.distill.votes import KEPT, LOW_AGREEMENT, NO_ANSWER, POSITION_INCONSISTENT, TIE
from s2d_assets_tests.curation_sql import curate_input, majority_vote


def test_clear_majority_is_kept() -> None:
    decision = majority_vote(["nk", "nk", "nk", "ab", None, "nk", "nk", "xy"], min_agreement=0.5, unparsed="count")
    assert decision.kept and decision.reason == KEPT
    assert decision.answer == "nk"
    assert decision.votes == {"nk": 5, "ab": 1, "xy": 1}
    assert decision.agreement == 5 / 8
    assert decision.n_samples == 8


def test_published_default_keeps_the_plurality_answer() -> None:
    # The paper keeps the most common answer; no floor on its share (min_agreement 0).
    spec = CurationSpec()
    assert (spec.min_agreement, spec.unparsed, spec.filter) == (0.0, "ignore", "self_consistency")
    decision = majority_vote(["a", "a", "b", "c", "d", None, None, None])
    assert decision.kept and decision.answer == "a"
    assert decision.agreement == 2 / 5  # ignore: N is the five samples that gave an answer
    assert decision.n_samples == 8


def test_tie_has_no_winner() -> None:
    decision = majority_vote(["yes", "no", "yes", "no"], min_agreement=0.25)
    assert not decision.kept and decision.reason == TIE and decision.answer is None


def test_threshold_is_an_option_and_recorded() -> None:
    decision = majority_vote(["a", "a", "b", "c", None, None, None, None], min_agreement=0.5, unparsed="count")
    assert not decision.kept and decision.reason == LOW_AGREEMENT
    assert decision.answer == "a" and decision.agreement == 0.25


@pytest.mark.parametrize(("unparsed", "agreement", "kept"), [("count", 0.25, False), ("ignore", 1.0, True)])
def test_how_unparsed_samples_count_is_explicit(unparsed: str, agreement: float, kept: bool) -> None:
    assert majority_vote([None, None], 0.5, unparsed).reason == NO_ANSWER
    decision = majority_vote(["yes", None, None, None], 0.5, unparsed)
    assert (decision.agreement, decision.kept, decision.n_samples) == (agreement, kept, 4)


def test_threshold_is_inclusive() -> None:
    assert majority_vote(["yes", "yes", "no", "no", "yes", "no", "yes", "yes"], 5 / 8, "count").kept


@pytest.mark.parametrize("filter_kind", ["self_consistency", "none", "perturbation", "combined"])
def test_position_inconsistent_judgments_are_discarded_not_ties(filter_kind: str) -> None:
    inconsistent = [(0, POSITION_INCONSISTENT), (0, POSITION_INCONSISTENT), (0, "A")]
    if filter_kind in ("perturbation", "combined"):
        inconsistent += [(1, POSITION_INCONSISTENT), (1, "B")]
    decision = curate_input(filter_kind, inconsistent, {0: {}, 1: {"A": "B", "B": "A", "tie": "tie"}}, 0.0)
    assert (decision.kept, decision.reason, decision.answer) == (False, POSITION_INCONSISTENT, None)
    consistent = curate_input("self_consistency", [(0, POSITION_INCONSISTENT), (0, "A"), (0, "A")], {}, 0.0)
    assert (consistent.kept, consistent.answer) == (True, "A")


def test_unparsed_mode_is_validated() -> None:
    with pytest.raises(ValueError, match="unparsed"):
        CurationSpec(unparsed="sometimes")  # type: ignore[arg-type]
