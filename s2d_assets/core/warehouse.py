"""The DuckDB warehouse: schema, connections (with lock retry) and whole-stage writes.

DuckDB allows one writing process per file. Every write here opens a connection, writes in
one transaction and closes, so heavy compute never holds the file and a failed write leaves
the warehouse as it was. After each committed write the file is copied to the read snapshot
(``warehouse.read.duckdb``, see ``core/snapshot.py``), which is what readers open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import polars as pl

from s2d_assets.core import snapshot
from s2d_assets.core.errors import StateError, one_line
from s2d_assets.core.faults import fault_point

SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, split VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL, reference VARCHAR, meta JSON,
    PRIMARY KEY (experiment, task, input_id)
);
CREATE TABLE IF NOT EXISTS perturbed_inputs (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, input_id VARCHAR NOT NULL, variant_id INTEGER NOT NULL,
    prompt VARCHAR NOT NULL, answer_map JSON,
    PRIMARY KEY (experiment, task, input_id, variant_id)
);
CREATE TABLE IF NOT EXISTS generations (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL,
    split VARCHAR NOT NULL, input_id VARCHAR NOT NULL, variant_id INTEGER NOT NULL, sample_idx INTEGER NOT NULL,
    steps JSON, output VARCHAR, answer VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, seconds DOUBLE, cache_key VARCHAR
);
-- Each (input, variant)'s answers counted (one row per distinct answer, NULL = unparsed; ``first_sample``
-- the lowest sample_idx that gave it): written with the generations it counts, in the same transaction
-- (``Warehouse.replace_tables``), so curation reads counts instead of every sample again.
CREATE TABLE IF NOT EXISTS answer_counts (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL,
    split VARCHAR NOT NULL, input_id VARCHAR NOT NULL, variant_id INTEGER NOT NULL, answer VARCHAR,
    c INTEGER NOT NULL, first_sample INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS curated_pool (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    answer VARCHAR, votes JSON, n_samples INTEGER, agreement DOUBLE,
    kept BOOLEAN NOT NULL, reason VARCHAR NOT NULL,
    PRIMARY KEY (experiment, task, method, input_id)
);
CREATE TABLE IF NOT EXISTS distillation_set (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, input_id VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL, completion VARCHAR NOT NULL,
    PRIMARY KEY (experiment, task, method, input_id)
);
CREATE TABLE IF NOT EXISTS llm_cache (
    cache_key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, request JSON NOT NULL,
    output VARCHAR NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    seconds DOUBLE, created_at TIMESTAMP DEFAULT current_timestamp
);
-- Why generation stopped ("stop", "length"; NULL unknown). Rows cached before it was recorded get "length"
-- once, where they spent their request's whole budget (``_migrate``); the rest stay NULL.
ALTER TABLE llm_cache ADD COLUMN IF NOT EXISTS finish_reason VARCHAR;
CREATE TABLE IF NOT EXISTS evaluations (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL,
    split VARCHAR NOT NULL, n INTEGER, accuracy DOUBLE, mean_tokens DOUBLE, seconds_per_item DOUBLE,
    checkpoint VARCHAR, train_examples INTEGER,
    PRIMARY KEY (experiment, task, method, system, split)
);
-- Baselines beside every score (added after the first release: ALTER keeps older warehouses readable).
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS status VARCHAR;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS majority_answer VARCHAR;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS majority_rate DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS top_answer VARCHAR;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS top_answer_share DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS answer_distribution JSON;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS parse_rate DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS discarded INTEGER;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS finish_reason VARCHAR;
-- The answer mode that produced a row: 'free' or 'constrained' (NULL: written before the option existed).
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS answer_mode VARCHAR;
ALTER TABLE generations ADD COLUMN IF NOT EXISTS answer_mode VARCHAR;
CREATE TABLE IF NOT EXISTS evaluation_groups (
    experiment VARCHAR NOT NULL, task VARCHAR NOT NULL, method VARCHAR NOT NULL, system VARCHAR NOT NULL,
    split VARCHAR NOT NULL, group_name VARCHAR NOT NULL, n INTEGER, accuracy DOUBLE, majority_rate DOUBLE,
    top_answer_share DOUBLE,
    PRIMARY KEY (experiment, task, method, system, split, group_name)
);
-- What was read, beside each accuracy: answers parsed, accuracy over them, and the chains cut off at the
-- token budget (``generations.finish_reason = 'length'``; NULL counts = the engine did not say).
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS n_parsed INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS accuracy_parsed DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS n_truncated INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS n_unparsed_truncated INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS n_finish_unknown INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS truncation_rate DOUBLE;
-- Rows a Ray generation job could not generate (engine.executor: ray): never cached, retried by the
-- next run; a log, so a key that later succeeded keeps its failure rows (join llm_cache to tell).
CREATE TABLE IF NOT EXISTS generation_failures (
    cache_key VARCHAR NOT NULL, model VARCHAR NOT NULL, stage VARCHAR NOT NULL, request JSON NOT NULL,
    error VARCHAR NOT NULL, created_at TIMESTAMP DEFAULT current_timestamp
);
"""

# Tables whose rows belong to one experiment (the generation cache is shared: it is keyed by content).
EXPERIMENT_TABLES = (
    "inputs",
    "perturbed_inputs",
    "generations",
    "answer_counts",
    "curated_pool",
    "distillation_set",
    "evaluations",
    "evaluation_groups",
)
# How ``answer_counts`` counts samples: the one definition, for the warehouse and for ``distill/votes.decide``.
COUNT_KEYS = "input_id, variant_id, answer"
COUNT_AGGREGATES = "count(*)::INTEGER AS c, min(sample_idx)::INTEGER AS first_sample"
_GENERATION_KEYS = "experiment, task, method, system, split"


def recount_answers(con: duckdb.DuckDBPyConnection, clause: str, params: Sequence[object]) -> None:
    """Replace the answer counts of the generations ``clause`` selects (inside the caller's transaction)."""
    con.execute(f"DELETE FROM answer_counts WHERE {clause}", list(params))
    con.execute(
        f"INSERT INTO answer_counts SELECT {_GENERATION_KEYS}, {COUNT_KEYS}, {COUNT_AGGREGATES} FROM generations "
        f"WHERE {clause} GROUP BY {_GENERATION_KEYS}, {COUNT_KEYS}",
        list(params),
    )


# A warehouse written before tables carried the experiment: its rows are moved under this name.
LEGACY_EXPERIMENT = "default"

LOCK_RETRY_SECONDS = 120.0


class Warehouse:
    """A DuckDB file. Connections are short-lived; writes are whole transactions.

    With ``experiment`` set, whole-stage writes and counts are scoped to that experiment's rows
    (the ``experiment`` column of ``EXPERIMENT_TABLES``); queries name it themselves.
    """

    def __init__(self, path: Path | str, experiment: str | None = None) -> None:
        self.path = Path(path)
        self.experiment = experiment

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r}, experiment={self.experiment!r})"

    def _scoped(self, table: str, where: dict[str, object]) -> dict[str, object]:
        if table in EXPERIMENT_TABLES:
            if self.experiment is None:
                raise ValueError(f"writing {table} needs the experiment: use Warehouse(path, experiment=...)")
            return {"experiment": self.experiment, **where}
        return where

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; a writable one holds the writer lock (``core/snapshot.py``) while open."""
        if read_only:
            if not self.path.exists():
                raise StateError(f"{self.path}: the warehouse does not exist yet; run `s2d run` first")
            with self._open(read_only=True) as con:
                yield con
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with snapshot.writer_lock(self.path, LOCK_RETRY_SECONDS), self._open(read_only=False) as con:
            yield con

    @contextmanager
    def _open(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._connect_with_retry(read_only)
        try:
            yield con
        except duckdb.Error as error:
            if _is_corrupt(error):
                raise StateError(self._corrupt_message(error)) from error
            raise
        finally:
            con.close()

    def _corrupt_message(self, error: Exception) -> str:
        return (
            f"{self.path}: the warehouse file is damaged ({one_line(str(error))[:160]}); move it aside "
            f"(mv {self.path} {self.path}.damaged) and run `s2d run` to rebuild it"
        )

    def read_snapshot(self) -> Path:
        """The read snapshot's path, (re)published first when it is missing or older than the warehouse."""
        if not self.path.exists():
            raise StateError(f"{self.path}: the warehouse does not exist yet; run `s2d run` first")
        if snapshot.is_stale(self.path):
            with self.connect():  # replays any write-ahead log, checkpoints on close
                if snapshot.is_stale(self.path):
                    snapshot.mark_written(self.path)
        return snapshot.snapshot_path(self.path)

    def _connect_with_retry(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # Another process (a concurrent run, the sql command) may hold the file lock briefly.
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                if not read_only and _migrate(con):
                    snapshot.mark_written(self.path)  # readers see the migrated file once this closes
                return con
            except duckdb.IOException as error:
                if _is_corrupt(error):
                    raise StateError(self._corrupt_message(error)) from None
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
            # The whole write in the file the snapshot copies (if another connection of this process is
            # mid-transaction this fails, and closing the last connection checkpoints instead).
            with suppress(duckdb.Error):
                con.execute("CHECKPOINT")
            snapshot.mark_written(self.path)

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
                where = self._scoped(table, where)
                if "experiment" in where and frame.height:
                    frame = frame.with_columns(pl.lit(where["experiment"]).alias("experiment"))
                clause = " AND ".join(f"{column} = ?" for column in where)
                con.execute(f"DELETE FROM {table} WHERE {clause}", list(where.values()))
                if frame.height:
                    con.register("incoming", frame)
                    columns = ", ".join(frame.columns)
                    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                    con.unregister("incoming")
                if table == "generations":
                    recount_answers(con, clause, list(where.values()))
            fault_point("warehouse:in_transaction")  # test hook: old rows deleted, new ones not committed

    def count(self, table: str, where: dict[str, object] | None = None) -> int:
        where = self._scoped(table, where or {}) if self.experiment else (where or {})
        clause = (" WHERE " + " AND ".join(f"{c} = ?" for c in where)) if where else ""
        with self.connect() as con:
            row = con.execute(f"SELECT count(*) FROM {table}{clause}", list(where.values())).fetchone()
        return int(row[0]) if row else 0


def _is_corrupt(error: Exception) -> bool:
    """DuckDB's errors for a file that is not (or no longer) a whole DuckDB database."""
    text = str(error)
    return any(
        marker in text
        for marker in ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt database file")
    )


# Cache rows from before ``finish_reason``: "length" where the completion spent its request's whole budget
# (as ``engines.base.known_finish_reason`` infers it); the rest stay NULL (unknown).
BACKFILL_FINISH_REASON = (
    "UPDATE llm_cache SET finish_reason = 'length' WHERE finish_reason IS NULL "
    "AND completion_tokens >= CAST(json_extract(request, '$.max_new_tokens') AS INTEGER)"
)


def _migrate(con: duckdb.DuckDBPyConnection) -> bool:
    """Bring the file to the current schema, from one listing of its tables; returns whether rows changed.

    A warehouse written before rows carried their experiment has its tables recreated and its rows
    moved under ``LEGACY_EXPERIMENT``; one from before ``answer_counts`` gets the counts of its
    generations; one from before ``llm_cache.finish_reason`` gets it inferred where it can be
    (``BACKFILL_FINISH_REASON``). All in one transaction; a current warehouse only runs the (idempotent) schema.
    """
    columns = dict(
        con.execute(
            "SELECT table_name, list(column_name) FROM information_schema.columns "
            "WHERE table_schema = 'main' GROUP BY table_name"
        ).fetchall()
    )
    legacy = [table for table, names in columns.items() if table in EXPERIMENT_TABLES and "experiment" not in names]
    uncounted = "answer_counts" not in columns
    unreasoned = "llm_cache" in columns and "finish_reason" not in columns["llm_cache"]
    if not legacy and not uncounted and not unreasoned:
        con.execute(SCHEMA)
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        for table in legacy:
            con.execute(f"ALTER TABLE {table} RENAME TO {table}_legacy")
        con.execute(SCHEMA)
        for table in legacy:
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT '{LEGACY_EXPERIMENT}' AS experiment, * FROM {table}_legacy"
            )
            con.execute(f"DROP TABLE {table}_legacy")
        if uncounted:
            recount_answers(con, "TRUE", [])
        if unreasoned:
            con.execute(BACKFILL_FINISH_REASON)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return True
