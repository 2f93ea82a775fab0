"""Sharding generation work by input, for running one stage on many workers.

Every sample of an input lands in the same shard (the shard is a hash of the input id), so a
shard's generations can be curated on their own and the union of the shards' pools is the
pool built in one piece. Each worker writes its generations as one Parquet file, replaced
atomically; DuckDB reads the folder of shards as one table. See docs/scaling.md.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

T = TypeVar("T")


def shard_of(input_id: str, n_shards: int) -> int:
    """A stable shard number in [0, n_shards) for an input id (independent of Python's hash seed)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be at least 1, got {n_shards}")
    digest = hashlib.sha256(input_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def shard_keys(n_shards: int) -> list[str]:
    """Partition keys for a Dagster ``StaticPartitionsDefinition``: ``shard-000-of-008`` ..."""
    return [f"shard-{i:03d}-of-{n_shards:03d}" for i in range(n_shards)]


def parse_shard_key(key: str) -> tuple[int, int]:
    try:
        _, index, _, total = key.split("-")
        shard, n_shards = int(index), int(total)
    except ValueError:
        raise ValueError(f"not a shard key: {key!r} (expected shard-<i>-of-<n>)") from None
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard key {key!r}: shard {shard} outside 0..{n_shards - 1}")
    return shard, n_shards


def split(items: Iterable[T], input_id: Callable[[T], str], n_shards: int) -> list[list[T]]:
    """Items grouped into shards by their input id, keeping their order within a shard."""
    shards: list[list[T]] = [[] for _ in range(n_shards)]
    for item in items:
        shards[shard_of(input_id(item), n_shards)].append(item)
    return shards


def select_shard(items: Sequence[T], input_id: Callable[[T], str], key: str) -> list[T]:
    """The items one partition (``shard-<i>-of-<n>``) works on."""
    shard, n_shards = parse_shard_key(key)
    return [item for item in items if shard_of(input_id(item), n_shards) == shard]


def write_shard(frame: pl.DataFrame, directory: Path, key: str) -> Path:
    """Write one shard's rows as ``<key>.parquet``, atomically (a crash leaves the old file or none)."""
    parse_shard_key(key)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key}.parquet"
    handle, staging = tempfile.mkstemp(prefix=f".{key}-", suffix=".parquet", dir=directory)
    os.close(handle)
    try:
        frame.write_parquet(staging)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


def read_shards(directory: Path, n_shards: int) -> pl.DataFrame:
    """All shards of a stage through DuckDB; refuses a folder where a shard is missing."""
    missing = [key for key in shard_keys(n_shards) if not (directory / f"{key}.parquet").exists()]
    if missing:
        raise FileNotFoundError(f"{directory}: missing shard file(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    pattern = str(directory / f"shard-*-of-{n_shards:03d}.parquet")
    with duckdb.connect() as con:
        return con.sql("SELECT * FROM read_parquet(?)", params=[pattern]).pl()
