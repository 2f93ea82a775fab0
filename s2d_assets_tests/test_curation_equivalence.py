"""The set-based curation query decides exactly like the per-input reference, on randomised pools."""

from __future__ import annotations

import json
import random

import pytest

from s2d_assets.distill.votes import decide
from s2d_assets_tests import curation_reference as ref
from s2d_assets_tests.curation_sql import samples_frame

SWAP = {"A": "B", "B": "A"}


def _random_pool(rng: random.Random, n_inputs: int, variants: int) -> tuple[list, dict]:  # type: ignore[type-arg]
    rows, maps = [], {}
    for i in range(n_inputs):
        input_id = f"in{i:04d}"
        n_samples = rng.choice([1, 2, 3, 4, 5, 8])
        alphabet = rng.choice([["A", "B"], ["A", "B", "C"], ["A", "B", "Z"], ["A", "B", ref.POSITION_INCONSISTENT]])
        for variant in range(variants):
            maps[(input_id, variant)] = SWAP if variant % 2 else {}
            for sample in range(n_samples):
                answer = None if rng.random() < 0.2 else rng.choice(alphabet)  # ties, unparsed, unmappable "Z"/"C"
                rows.append((input_id, variant, sample, answer))
    return rows, maps


def _reference(filter_kind: str, rows: list, maps: dict, min_agreement: float, unparsed: str) -> dict:  # type: ignore[type-arg]
    by_input: dict[str, list[tuple[int, str | None]]] = {}
    for input_id, variant, _, answer in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        by_input.setdefault(input_id, []).append((variant, answer))
    return {
        input_id: ref.curate_input(
            filter_kind, samples, {v: maps[(input_id, v)] for v, _ in samples}, min_agreement, unparsed
        )
        for input_id, samples in by_input.items()
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unparsed", ["ignore", "count"])
@pytest.mark.parametrize("filter_kind", ["self_consistency", "none", "perturbation", "combined"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_set_based_decisions_equal_the_reference(filter_kind: str, seed: int, unparsed: str) -> None:
    rng = random.Random(seed)
    variants = 1 if filter_kind in ("self_consistency", "none") else rng.choice([2, 3])
    rows, maps = _random_pool(rng, 300, variants)
    rng.shuffle(rows)  # the query must not depend on row order
    min_agreement = rng.choice([0.0, 0.34, 0.5, 0.75])
    expected = _reference(filter_kind, rows, maps, min_agreement, unparsed)
    got = decide(samples_frame(rows, maps), filter_kind, min_agreement, unparsed)
    assert got["input_id"].to_list() == sorted(expected)
    reasons = set()
    for row in got.iter_rows(named=True):
        want = expected[row["input_id"]]
        assert (row["answer"], row["kept"], row["reason"], row["n_samples"]) == (
            want.answer,
            want.kept,
            want.reason,
            want.n_samples,
        ), row["input_id"]
        assert json.loads(row["votes"]) == want.votes
        assert row["agreement"] == pytest.approx(want.agreement)
        reasons.add(row["reason"])
    assert len(reasons) >= (
        2 if filter_kind in ("none", "perturbation") else 3
    )  # several decision paths, ties and unparsed among them
