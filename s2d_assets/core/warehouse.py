"""The DuckDB warehouse: schema, connections (with lock retry) and whole-stage writes.

DuckDB allows one writing process per file. Every write here opens a connection, writes in
one transaction and closes, so heavy compute never holds the file and a failed write leaves
the warehouse as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    task VARCHAR NOT NULL, split VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL, reference VARCHAR, meta JSON,
    PRIMARY KEY (task, input_id)
);
CREATE TABLE IF NOT EXISTS perturbed_inputs (
    task VARCHAR NOT NULL, input_id VARCHAR NOT NULL, variant_id INTEGER NOT NULL,
    prompt VARCHAR NOT NULL, answer_map JSON,
    PRIMARY KEY (task, input_id, variant_id)
);
CREATE TABLE IF NOT EXISTS generations (
    task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL, split VARCHAR NOT NULL,
    input_id VARCHAR NOT NULL, variant_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    steps JSON, output VARCHAR, answer VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, seconds DOUBLE, cache_key VARCHAR
);
CREATE TABLE IF NOT EXISTS curated_pool (
    task VARCHAR NOT NULL, method VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    answer VARCHAR, votes JSON, n_samples INTEGER, agreement DOUBLE,
    kept BOOLEAN NOT NULL, reason VARCHAR NOT NULL,
    PRIMARY KEY (task, method, input_id)
);
CREATE TABLE IF NOT EXISTS distillation_set (
    task VARCHAR NOT NULL, method VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL, completion VARCHAR NOT NULL,
    PRIMARY KEY (task, method, input_id)
);
CREATE TABLE IF NOT EXISTS llm_cache (
    cache_key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, request JSON NOT NULL,
    output VARCHAR NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    seconds DOUBLE, created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS evaluations (
    task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL, split VARCHAR NOT NULL,
    n INTEGER, accuracy DOUBLE, mean_tokens DOUBLE, seconds_per_item DOUBLE,
    checkpoint VARCHAR, train_examples INTEGER,
    PRIMARY KEY (task, method, system, split)
);
"""

LOCK_RETRY_SECONDS = 120.0


class Warehouse:
    """A DuckDB file. Connections are short-lived; writes are whole transactions."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: warehouse does not exist yet; materialise the assets first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect_with_retry(read_only)
        try:
            yield con
        finally:
            con.close()

    def _connect_with_retry(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # Another process (a concurrent run, the sql command) may hold the file lock briefly.
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                if not read_only:
                    con.execute(SCHEMA)
                return con
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: everything in it lands, or nothing does."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.sql(sql, params=list(params or [])).pl()

    def replace_rows(self, table: str, where: dict[str, object], frame: pl.DataFrame) -> None:
        """Replace the rows of one stage (``where``) by ``frame`` in a single transaction."""
        self.replace_tables([(table, where, frame)])

    def replace_tables(self, replacements: Sequence[tuple[str, dict[str, object], pl.DataFrame]]) -> None:
        """Several ``replace_rows`` in one transaction: all of them land, or none does."""
        with self.transaction() as con:
            for table, where, frame in replacements:
                clause = " AND ".join(f"{column} = ?" for column in where)
                con.execute(f"DELETE FROM {table} WHERE {clause}", list(where.values()))
                if frame.height:
                    con.register("incoming", frame)
                    columns = ", ".join(frame.columns)
                    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                    con.unregister("incoming")

    def count(self, table: str, where: dict[str, object] | None = None) -> int:
        where = where or {}
        clause = (" WHERE " + " AND ".join(f"{c} = ?" for c in where)) if where else ""
        with self.connect() as con:
            row = con.execute(f"SELECT count(*) FROM {table}{clause}", list(where.values())).fetchone()
        return int(row[0]) if row else 0
