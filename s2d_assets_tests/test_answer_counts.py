"""``answer_counts``: written with the generations it counts, in step with them, and built for an older warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from s2d_assets.core.warehouse import Warehouse
from s2d_assets.distill.votes import ORIGINAL_COUNTS_SQL, decide, decide_in

WHERE = {"task": "t", "method": "m", "system": "system2", "split": "train"}
RECOUNT = (
    "SELECT input_id, variant_id, answer, count(*) AS c, min(sample_idx) AS first_sample FROM generations "
    "GROUP BY ALL ORDER BY ALL"
)
STORED = "SELECT input_id, variant_id, answer, c, first_sample FROM answer_counts ORDER BY ALL"


def samples(answers: dict[str, list[str | None]]) -> pl.DataFrame:
    rows = [(i, k, a) for i, given in answers.items() for k, a in enumerate(given)]
    return pl.DataFrame(
        {
            **WHERE,
            "input_id": [r[0] for r in rows],
            "variant_id": 0,
            "sample_idx": [r[1] for r in rows],
            "answer": [r[2] for r in rows],
        },
        schema_overrides={"variant_id": pl.Int32, "sample_idx": pl.Int32, "answer": pl.String},
    )


def test_counts_follow_every_write_of_the_generations(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb", experiment="e")
    warehouse.replace_rows("generations", WHERE, samples({"a": ["x", "x", None, "y"], "b": [None, "z", "z"]}))
    assert warehouse.query(STORED).rows() == warehouse.query(RECOUNT).rows()
    assert ("a", 0, "x", 2, 0) in warehouse.query(STORED).rows() and ("b", 0, None, 1, 0) in warehouse.query(
        STORED
    ).rows()
    # A stage's samples replaced: its counts are replaced with them; another stage's stay.
    other = {**WHERE, "method": "m2"}
    warehouse.replace_rows("generations", other, samples({"c": ["q"]}).with_columns(pl.lit("m2").alias("method")))
    warehouse.replace_rows("generations", WHERE, samples({"a": ["y"]}))
    stored = warehouse.query("SELECT method, input_id, answer, c FROM answer_counts ORDER BY ALL").rows()
    assert stored == [("m", "a", "y", 1), ("m2", "c", "q", 1)]
    warehouse.replace_rows("generations", WHERE, pl.DataFrame())
    assert warehouse.query("SELECT method FROM answer_counts").rows() == [("m2",)]


def test_a_failed_write_leaves_samples_and_counts_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb", experiment="e")
    warehouse.replace_rows("generations", WHERE, samples({"a": ["x", "x"]}))
    before = warehouse.query(STORED).rows()

    def broken_recount(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("s2d_assets.core.warehouse.recount_answers", broken_recount)
    with pytest.raises(RuntimeError, match="disk full"):
        warehouse.replace_rows("generations", WHERE, samples({"a": ["y"]}))
    monkeypatch.undo()
    assert warehouse.query("SELECT answer FROM generations").rows() == [("x",), ("x",)]
    assert warehouse.query(STORED).rows() == before


def test_a_warehouse_from_before_the_counts_gets_them_once(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse = Warehouse(path, experiment="e")
    warehouse.replace_rows("generations", WHERE, samples({"a": ["x", "y", "y", None], "b": ["x"]}))
    with duckdb.connect(str(path)) as con:  # as an older release left it: no answer_counts table
        con.execute("DROP TABLE answer_counts")
    with warehouse.connect() as con:
        params = ["e", "t", "m", "train"]
        migrated = decide_in(con, ORIGINAL_COUNTS_SQL, params, "self_consistency")
    assert warehouse.query(STORED).rows() == warehouse.query(RECOUNT).rows()
    with duckdb.connect(str(warehouse.read_snapshot()), read_only=True) as con:  # readers see the table too
        assert con.sql("SELECT sum(c) FROM answer_counts").fetchall() == [(5,)]
    from_samples = decide(
        warehouse.query("SELECT input_id, variant_id, sample_idx, answer, NULL AS answer_map FROM generations"),
        "self_consistency",
    )
    # the votes object lists its answers in no particular order: compared as JSON
    as_json = pl.col("votes").map_elements(lambda v: json.dumps(json.loads(v), sort_keys=True), pl.String)
    assert migrated.with_columns(as_json).rows() == from_samples.with_columns(as_json).rows()
    assert migrated.filter(pl.col("input_id") == "a")["answer"].to_list() == ["y"]


def test_a_warehouse_from_before_experiments_gets_its_rows_moved_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:  # the first release: no experiment column, no answer_counts
        con.execute(
            "CREATE TABLE generations (task VARCHAR, method VARCHAR, system VARCHAR, split VARCHAR, "
            "input_id VARCHAR, variant_id INTEGER, sample_idx INTEGER, answer VARCHAR)"
        )
        con.execute(
            "INSERT INTO generations VALUES ('t', 'm', 'system2', 'train', 'a', 0, 0, 'x'), "
            "('t', 'm', 'system2', 'train', 'a', 0, 1, 'x'), ('t', 'm', 'system2', 'train', 'a', 0, 2, NULL)"
        )
    warehouse = Warehouse(path, experiment="default")
    assert (
        warehouse.query(STORED).rows() == warehouse.query(RECOUNT).rows() == [("a", 0, "x", 2, 0), ("a", 0, None, 1, 2)]
    )
    assert warehouse.query("SELECT DISTINCT experiment FROM answer_counts").rows() == [("default",)]
