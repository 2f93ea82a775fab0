"""Sharding generation by input: complete and disjoint, and the pool from shards equals the pool in one piece."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from s2d_assets.curation import majority_vote
from s2d_assets.sharding import (
    parse_shard_key,
    read_shards,
    select_shard,
    shard_keys,
    shard_of,
    split,
    write_shard,
)

Row = tuple[str, int, str | None]  # input_id, sample_idx, parsed answer


def generations(n_inputs: int = 300, n_samples: int = 8, seed: int = 0) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for i in range(n_inputs):
        answers = rng.choice([["yes"], ["yes", "no"], ["a", "b", "c"], ["x", None]])
        rows += [(f"input-{i:04d}", s, rng.choice(answers)) for s in range(n_samples)]
    rng.shuffle(rows)
    return rows


def pool(rows: list[Row], min_agreement: float = 0.5) -> dict[str, tuple[str | None, bool, str]]:
    by_input: dict[str, list[tuple[int, str | None]]] = {}
    for input_id, sample, answer in rows:
        by_input.setdefault(input_id, []).append((sample, answer))
    decisions = {}
    for input_id, samples in by_input.items():
        decision = majority_vote([a for _, a in sorted(samples)], min_agreement)
        decisions[input_id] = (decision.answer, decision.kept, decision.reason)
    return decisions


@pytest.mark.parametrize("n_shards", [1, 3, 8, 64])
def test_shards_cover_every_input_exactly_once(n_shards: int) -> None:
    rows = generations()
    shards = split(rows, lambda r: r[0], n_shards)
    assert sorted(r for shard in shards for r in shard) == sorted(rows)
    owners: dict[str, set[int]] = {}
    for index, shard in enumerate(shards):
        for input_id, _, _ in shard:
            owners.setdefault(input_id, set()).add(index)
    assert all(len(o) == 1 for o in owners.values())  # all samples of an input share one shard
    assert len(owners) == 300
    by_key = [select_shard(rows, lambda r: r[0], key) for key in shard_keys(n_shards)]
    assert by_key == shards
    if n_shards == 8:
        assert min(len(s) for s in shards) > 0  # the hash spreads inputs over every shard


def test_pool_from_shards_equals_pool_in_one_piece() -> None:
    rows = generations(seed=3)
    whole = pool(rows)
    from_shards: dict[str, tuple[str | None, bool, str]] = {}
    for shard in split(rows, lambda r: r[0], 7):
        part = pool(shard)
        assert not set(part) & set(from_shards)
        from_shards.update(part)
    assert from_shards == whole
    assert {reason for _, _, reason in whole.values()} >= {"kept", "no_unique_majority"}


def test_parquet_shards_read_by_duckdb_equal_the_whole(tmp_path: Path) -> None:
    rows = generations(n_inputs=50, seed=5)
    frame = pl.DataFrame(rows, schema=["input_id", "sample_idx", "answer"], orient="row")
    keys = shard_keys(4)
    for key, shard in zip(keys, split(rows, lambda r: r[0], 4), strict=True):
        write_shard(pl.DataFrame(shard, schema=frame.schema, orient="row"), tmp_path / "gen", key)
    back = read_shards(tmp_path / "gen", 4)
    assert back.sort("input_id", "sample_idx").rows() == frame.sort("input_id", "sample_idx").rows()
    assert pool(list(back.rows())) == pool(rows)
    # Re-writing a shard replaces it; no staging files are left behind.
    write_shard(
        pl.DataFrame(split(rows, lambda r: r[0], 4)[0], schema=frame.schema, orient="row"), tmp_path / "gen", keys[0]
    )
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [f"{k}.parquet" for k in keys]
    (tmp_path / "gen" / f"{keys[2]}.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=keys[2]):
        read_shards(tmp_path / "gen", 4)


def test_shard_numbers_are_stable_and_keys_are_checked() -> None:
    assert shard_of("input-0001", 8) == shard_of("input-0001", 8)
    assert parse_shard_key("shard-002-of-008") == (2, 8)
    for bad in ("shard-9-of-8", "part-1", "shard-a-of-b"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard_key(bad)
    with pytest.raises(ValueError, match="n_shards"):
        shard_of("x", 0)
