"""Curation at scale: the pool stage's set-based decisions against a bare DuckDB majority vote.

Both run in one process on the same synthetic ``generations`` rows in a DuckDB file (default
10 M rows: 1.25 M inputs x 8 samples, answers from a small alphabet with ~10 % unparsed), and
alternate in rounds so that machine load hits both alike:

- *bare*: the plainest majority vote a user would write over the samples (per input, the most
  frequent parsed answer and its count), nothing else, fetched as a polars frame as the stage's
  decisions are;
- *stage*: ``s2d_assets.distill.votes.decide_in`` over the stage's own ``ORIGINAL_COUNTS_SQL``
  (self-consistency reads no answer maps): the decision, reason, votes and agreement of every
  input, exactly what the stage writes. It reads ``answer_counts``, which the warehouse writes with
  the generations (``recount_answers``, in the generation stage's transaction); that counting is
  timed too, once, as the generation stage pays it.

Writing the pool (``replace_rows``) is timed separately: it is the same for any curation.

    .venv/bin/python benchmarks/curation.py [--rows 10000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import duckdb

from s2d_assets.core.warehouse import Warehouse, recount_answers
from s2d_assets.distill.votes import ORIGINAL_COUNTS_SQL, decide_in

BARE = """
SELECT input_id, arg_max(answer, c) AS answer, max(c) AS votes FROM (
    SELECT input_id, answer, count(*) AS c FROM generations
    WHERE experiment = ? AND task = ? AND method = ? AND system = 'system2' AND split = ? AND answer IS NOT NULL
    GROUP BY input_id, answer
) GROUP BY input_id ORDER BY input_id
"""
PARAMS = ["bench", "t", "m", "train"]


def build(path: Path, rows: int, samples: int) -> float:
    """The synthetic samples, then their answer counts as the generation stage writes them; returns
    the seconds the counting took."""
    warehouse = Warehouse(path, experiment="bench")
    with warehouse.connect() as con:
        con.execute(
            f"""INSERT INTO generations (experiment, task, method, system, split, input_id, variant_id, sample_idx,
                                          answer, completion_tokens)
            SELECT 'bench', 't', 'm', 'system2', 'train', 'in' || lpad((i // {samples})::VARCHAR, 8, '0'), 0,
                   (i % {samples})::INTEGER,
                   CASE WHEN hash(i) % 10 = 0 THEN NULL ELSE chr(65 + (hash(i * 7) % 4)::INTEGER) END, 8
            FROM range({rows}) t(i)"""
        )
        started = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        recount_answers(con, "experiment = ? AND task = ? AND method = ?", ["bench", "t", "m"])
        con.execute("COMMIT")
        counting = time.perf_counter() - started
        con.execute(
            f"""INSERT INTO perturbed_inputs (experiment, task, input_id, variant_id, prompt, answer_map)
            SELECT 'bench', 't', 'in' || lpad(i::VARCHAR, 8, '0'), 0, 'q', '{{}}' FROM range({rows // samples}) t(i)"""
        )
    return counting


def timed(fn) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    n = fn()
    return time.perf_counter() - started, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        started = time.perf_counter()
        counting = build(path, args.rows, args.samples)
        print(f"built {args.rows:,} generation rows in {time.perf_counter() - started:.1f}s")
        bare, stage = [], []
        with duckdb.connect(str(path), read_only=True) as con:
            for _ in range(args.rounds):
                seconds, n_bare = timed(lambda: con.sql(BARE, params=PARAMS).pl().height)
                bare.append(seconds)
                seconds, n_stage = timed(lambda: decide_in(con, ORIGINAL_COUNTS_SQL, PARAMS, "self_consistency").height)
                stage.append(seconds)
                assert n_bare <= n_stage == args.rows // args.samples
        decisions = None
        with duckdb.connect(str(path), read_only=True) as con:
            decisions = decide_in(con, ORIGINAL_COUNTS_SQL, PARAMS, "self_consistency")
        seconds_write, _ = timed(
            lambda: (
                Warehouse(path, experiment="bench").replace_rows(
                    "curated_pool",
                    {"task": "t", "method": "m"},
                    decisions.with_columns(task=None, method=None)
                    .drop("task", "method")
                    .with_columns(
                        __import__("polars").lit("t").alias("task"), __import__("polars").lit("m").alias("method")
                    ),
                )
                or 0
            )
        )
    best_bare, best_stage = min(bare), min(stage)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, duckdb {duckdb.__version__}")
    print(f"bare majority vote : best {best_bare:.2f}s  (rounds: {', '.join(f'{s:.2f}' for s in bare)})")
    print(f"stage curation     : best {best_stage:.2f}s  (rounds: {', '.join(f'{s:.2f}' for s in stage)})")
    print(f"ratio stage / bare : {best_stage / best_bare:.2f}x")
    print(f"counting the answers at generation time (once, in the generation stage's write): {counting:.2f}s")
    print(f"writing the pool ({args.rows // args.samples:,} rows): {seconds_write:.2f}s")


if __name__ == "__main__":
    main()
