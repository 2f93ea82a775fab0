"""The shipped SQL models on a small hand-made warehouse: the aggregates each one should return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.sql_models import SQL_FOLDER
from s2d_assets.defs.stage_assets import STAGES
from s2d_assets.defs.tables import WAREHOUSE_TABLES
from s2d_assets.sql.models import build_model, load_models
from s2d_assets_tests.curation_sql import majority_vote

SHIPPED = {"pool_summary", "agreement_histogram", "method_comparison", "token_cost", "disagreements"}

# System 2 samples per (task, method, input): what the fixture's generations hold (None = no answer).
SAMPLES: dict[tuple[str, str, str], list[str | None]] = {
    ("t1", "m1", "i1"): ["a", "a", "a", "a"],  # unanimous, kept
    ("t1", "m1", "i2"): ["b", "b", "b", "c"],  # 3 of 4, kept, a disagreement
    ("t1", "m1", "i3"): ["a", "b", "a", "b"],  # tie, dropped, a disagreement
    ("t1", "m1", "i4"): [None, None, None, None],  # nothing parsed, dropped
    ("t1", "m2", "i1"): ["x", "y", "x", None],  # 2 of 4, kept at min_agreement 0.5, a disagreement
    ("t1", "m2", "i2"): ["z", None, None, None],  # 1 of 4, below min_agreement, one answer only
}

# (task, method, system) -> (n, accuracy, mean_tokens, train_examples)
EVALUATIONS = {
    ("t1", "m1", "system1"): (4, 0.25, 3.0, None),
    ("t1", "m1", "system2"): (4, 0.75, 20.0, None),
    ("t1", "m1", "distilled"): (4, 0.5, 2.5, 2),
    ("t1", "m2", "system1"): (4, 0.25, 3.0, None),
    ("t1", "m2", "system2"): (4, 0.0, 30.0, None),
    ("t1", "m2", "distilled"): (4, 0.25, 2.0, 1),
}


def fixture_warehouse(path: Path) -> Warehouse:
    warehouse = Warehouse(path)
    inputs = [{"task": "t1", "split": "train", "input_id": f"i{k}", "prompt": f"question {k}"} for k in range(1, 5)]
    inputs.append({"task": "t1", "split": "eval", "input_id": "e1", "prompt": "eval question"})
    generations: list[dict[str, Any]] = []
    pool = []
    for (task, method, input_id), answers in SAMPLES.items():
        for sample, answer in enumerate(answers):
            generations.append(
                {"task": task, "method": method, "system": "system2", "split": "train", "input_id": input_id}
                | {"variant_id": 0, "sample_idx": sample, "answer": answer, "completion_tokens": 10}
            )
        decision = majority_vote(answers, 0.5, unparsed="count")  # the fixture was written with N = every sample
        pool.append(
            {"task": task, "method": method, "input_id": input_id, "answer": decision.answer}
            | {"votes": json.dumps(decision.votes), "n_samples": decision.n_samples, "agreement": decision.agreement}
            | {"kept": decision.kept, "reason": decision.reason}
        )
    # Rows the disagreement model must ignore: another variant, and the eval split.
    generations.append(
        {"task": "t1", "method": "m1", "system": "system2", "split": "train", "input_id": "i1"}
        | {"variant_id": 1, "sample_idx": 0, "answer": "zzz", "completion_tokens": 10}
    )
    for sample, answer in enumerate(["p", "q"]):
        generations.append(
            {"task": "t1", "method": "m1", "system": "system2", "split": "eval", "input_id": "e1"}
            | {"variant_id": 0, "sample_idx": sample, "answer": answer, "completion_tokens": 10}
        )
    evaluations = [
        {"task": t, "method": m, "system": s, "split": "eval", "n": n, "accuracy": acc, "mean_tokens": tokens}
        | {"seconds_per_item": 0.1, "train_examples": train}
        for (t, m, s), (n, acc, tokens, train) in EVALUATIONS.items()
    ]
    with warehouse.transaction() as con:
        for table, rows in (
            ("inputs", inputs),
            ("generations", generations),
            ("curated_pool", pool),
            ("evaluations", evaluations),
        ):
            frame = pl.DataFrame(rows, infer_schema_length=None)
            con.register("incoming", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT 'fixture' AS experiment, * FROM incoming")
            con.unregister("incoming")
    return warehouse


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    warehouse = fixture_warehouse(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")
    for resolved in load_models(SQL_FOLDER, WAREHOUSE_TABLES):  # upstream first
        build_model(warehouse, resolved.model)
    return warehouse


def rows(warehouse: Warehouse, sql: str) -> list[dict[str, Any]]:
    with warehouse.connect(read_only=True) as con:
        return con.sql(sql).pl().to_dicts()


def test_every_shipped_model_is_there_and_every_table_has_a_writer() -> None:
    assert {r.model.name for r in load_models(SQL_FOLDER, WAREHOUSE_TABLES)} == SHIPPED
    assert {table for stage in STAGES for table in stage.tables} == WAREHOUSE_TABLES


def test_pool_summary(warehouse: Warehouse) -> None:
    assert rows(warehouse, "SELECT * FROM analytics.pool_summary") == [
        {
            "experiment": "fixture",
            "task": "t1",
            "method": "m1",
            "inputs": 4,
            "kept": 2,
            "keep_rate": 0.5,
            "mean_agreement": 0.5625,  # (1 + 0.75 + 0.5 + 0) / 4
            "mean_agreement_kept": 0.875,
            "dropped_tie": 1,
            "dropped_low_agreement": 0,
            "dropped_no_answer": 1,
        },
        {
            "experiment": "fixture",
            "task": "t1",
            "method": "m2",
            "inputs": 2,
            "kept": 1,
            "keep_rate": 0.5,
            "mean_agreement": 0.375,
            "mean_agreement_kept": 0.5,
            "dropped_tie": 0,
            "dropped_low_agreement": 1,
            "dropped_no_answer": 0,
        },
    ]


def test_agreement_histogram(warehouse: Warehouse) -> None:
    found = rows(warehouse, "SELECT method, majority_votes, agreement, inputs, kept FROM analytics.agreement_histogram")
    assert [tuple(r.values()) for r in found] == [
        ("m1", 0, 0.0, 1, 0),
        ("m1", 1, 0.25, 0, 0),
        ("m1", 2, 0.5, 1, 0),
        ("m1", 3, 0.75, 1, 1),
        ("m1", 4, 1.0, 1, 1),
        ("m2", 0, 0.0, 0, 0),
        ("m2", 1, 0.25, 1, 0),
        ("m2", 2, 0.5, 1, 1),
        ("m2", 3, 0.75, 0, 0),
        ("m2", 4, 1.0, 0, 0),
    ]


def test_method_comparison(warehouse: Warehouse) -> None:
    assert rows(warehouse, "SELECT * FROM analytics.method_comparison") == [
        {
            "experiment": "fixture",
            "task": "t1",
            "method": "m1",
            "n": 4,
            "system1_accuracy": 25.0,
            "system2_accuracy": 75.0,
            "distilled_accuracy": 50.0,
            "system1_tokens": 3.0,
            "system2_tokens": 20.0,
            "distilled_tokens": 2.5,
            "train_examples": 2,
            "pool_keep_rate": 0.5,
        },
        {
            "experiment": "fixture",
            "task": "t1",
            "method": "m2",
            "n": 4,
            "system1_accuracy": 25.0,
            "system2_accuracy": 0.0,
            "distilled_accuracy": 25.0,
            "system1_tokens": 3.0,
            "system2_tokens": 30.0,
            "distilled_tokens": 2.0,
            "train_examples": 1,
            "pool_keep_rate": 0.5,
        },
    ]


def test_token_cost(warehouse: Warehouse) -> None:
    found = rows(
        warehouse, "SELECT method, system, correct, generated_tokens, tokens_per_correct FROM analytics.token_cost"
    )
    assert [tuple(r.values()) for r in found] == [
        ("m1", "system1", 1, 12, 12.0),
        ("m1", "system2", 3, 80, 26.7),
        ("m1", "distilled", 2, 10, 5.0),
        ("m2", "system1", 1, 12, 12.0),
        ("m2", "system2", 0, 120, None),  # nothing correct: no cost per correct answer
        ("m2", "distilled", 1, 8, 8.0),
    ]


def test_disagreements(warehouse: Warehouse) -> None:
    found = rows(
        warehouse,
        "SELECT method, input_id, prompt, competing_answers, distinct_answers, samples, unparsed, pool_answer, kept, "
        "reason FROM analytics.disagreements",
    )
    assert [tuple(r.values()) for r in found] == [
        ("m1", "i2", "question 2", "b (3), c (1)", 2, 4, 0, "b", True, "kept"),
        ("m1", "i3", "question 3", "a (2), b (2)", 2, 4, 0, None, False, "no_unique_majority"),
        ("m2", "i1", "question 1", "x (2), y (1)", 2, 4, 1, "x", True, "kept"),
    ]


def test_materialisation_switches_and_a_failed_build_changes_nothing(tmp_path: Path) -> None:
    warehouse = fixture_warehouse(tmp_path / "w.duckdb")
    folder = tmp_path / "sql"
    (folder / "s").mkdir(parents=True)
    path = folder / "s" / "kept.sql"

    def build(sql: str) -> tuple[str, int]:
        path.write_text(sql)
        (resolved,) = load_models(folder, WAREHOUSE_TABLES)
        built = build_model(warehouse, resolved.model)
        with warehouse.connect(read_only=True) as con:
            kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'kept'").fetchone()
        return str(kind[0] if kind else None), built.row_count

    assert build("SELECT * FROM curated_pool WHERE kept") == ("VIEW", 3)
    assert build("-- materialized: table\nSELECT * FROM curated_pool WHERE kept") == ("BASE TABLE", 3)
    with pytest.raises(Exception, match="Conversion"):
        build("SELECT CAST(input_id AS INTEGER) AS broken FROM curated_pool")
    assert rows(warehouse, "SELECT count(*) AS n FROM s.kept") == [{"n": 3}]  # the table from before
    assert build("SELECT * FROM curated_pool WHERE NOT kept") == ("VIEW", 3)


def test_data_version_hashes_content_not_layout(tmp_path: Path) -> None:
    warehouse = fixture_warehouse(tmp_path / "w.duckdb")
    folder = tmp_path / "sql"
    folder.mkdir()
    path = folder / "m.sql"
    versions = []
    for sql in (
        "SELECT task, count(*) AS n FROM curated_pool GROUP BY task",
        "-- same rows\nselect task, count(*) as n from curated_pool group by all order by 1",
        "SELECT task, count(*) AS n FROM curated_pool WHERE kept GROUP BY task",
    ):
        path.write_text(sql)
        (resolved,) = load_models(folder, WAREHOUSE_TABLES)
        versions.append(build_model(warehouse, resolved.model).data_version)
    assert versions[0] == versions[1] != versions[2]
