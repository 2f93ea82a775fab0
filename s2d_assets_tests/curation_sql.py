"""One input's decision through the set-based curation query, in the reference's call shape."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import polars as pl

from s2d_assets.distill.votes import decide
from s2d_assets_tests.curation_reference import Decision


def samples_frame(
    rows: Sequence[tuple[str, int, int, str | None]], maps: Mapping[tuple[str, int], Mapping]
) -> pl.DataFrame:
    """``rows`` of (input_id, variant_id, sample_idx, answer); ``maps`` (input_id, variant_id) -> answer map."""
    return pl.DataFrame(
        {
            "input_id": [r[0] for r in rows],
            "variant_id": [r[1] for r in rows],
            "sample_idx": [r[2] for r in rows],
            "answer": [r[3] for r in rows],
            "answer_map": [json.dumps(dict(maps.get((r[0], r[1]), {})), sort_keys=True) for r in rows],
        },
        schema={
            "input_id": pl.String,
            "variant_id": pl.Int32,
            "sample_idx": pl.Int32,
            "answer": pl.String,
            "answer_map": pl.String,
        },
    )


def to_decision(row: dict) -> Decision:  # type: ignore[type-arg]
    return Decision(
        row["answer"], json.loads(row["votes"]), row["n_samples"], row["agreement"], row["kept"], row["reason"]
    )


def curate_input(
    filter_kind: str,
    samples: Sequence[tuple[int, str | None]],
    answer_maps: Mapping[int, Mapping[str, str]],
    min_agreement: float,
    unparsed: str = "ignore",
) -> Decision:
    counters: dict[int, int] = {}
    rows = []
    for variant, answer in samples:
        rows.append(("x", variant, counters.get(variant, 0), answer))
        counters[variant] = counters.get(variant, 0) + 1
    maps = {("x", v): m for v, m in answer_maps.items()}
    frame = decide(samples_frame(rows, maps), filter_kind, min_agreement, unparsed)
    return to_decision(frame.row(0, named=True))


def majority_vote(answers: Sequence[str | None], min_agreement: float = 0.0, unparsed: str = "ignore") -> Decision:
    return curate_input("self_consistency", [(0, a) for a in answers], {}, min_agreement, unparsed)
