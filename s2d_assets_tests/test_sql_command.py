"""`s2d sql`: read-only queries printed as a table, CSV or JSON; writes refused twice over."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import duckdb
import pytest

from s2d_assets.cli import main
from s2d_assets.config.experiment import PROJECT_ROOT
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.sql_models import SQL_FOLDER
from s2d_assets.defs.tables import WAREHOUSE_TABLES
from s2d_assets.sql.models import build_model, load_models
from s2d_assets.sql.query import QueryError, WriteRefused, check_read_only, run_query
from s2d_assets_tests.test_sql_shipped_models import fixture_warehouse

POOL_QUERY = "SELECT method, count(*) AS inputs, sum(kept::INT) AS kept FROM curated_pool GROUP BY method ORDER BY 1"


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return fixture_warehouse(tmp_path / "warehouse.duckdb").path


def sql(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sql", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "FROM curated_pool",
        "WITH k AS (SELECT * FROM curated_pool WHERE kept) SELECT count(*) FROM k",
        "SELECT 1 UNION ALL SELECT 2",
        "VALUES (1), (2)",
        "DESCRIBE curated_pool",
        "SHOW TABLES",
        "SUMMARIZE evaluations",
        "SELECT * FROM read_csv('x.csv')",
    ],
)
def test_read_only_statements_pass(query: str) -> None:
    check_read_only(query)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("INSERT INTO inputs VALUES ('t', 'train', 'x', 'p', NULL, NULL)", "INSERT"),
        ("UPDATE curated_pool SET kept = true", "UPDATE"),
        ("DELETE FROM llm_cache", "DELETE"),
        ("DROP TABLE evaluations", "DROP"),
        ("CREATE TABLE mine AS SELECT * FROM inputs", "CREATE"),
        ("CREATE OR REPLACE VIEW analytics.pool_summary AS SELECT 1", "CREATE"),
        ("ALTER TABLE inputs ADD COLUMN x INT", "ALTER"),
        ("TRUNCATE generations", "TRUNCATE"),
        ("COPY (SELECT * FROM inputs) TO 'leak.csv'", "COPY"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("SET threads = 1", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("INSTALL httpfs", "INSTALL"),
        ("CHECKPOINT", ""),
        ("BEGIN TRANSACTION", "TRANSACTION"),
        ("EXPLAIN ANALYZE INSERT INTO inputs SELECT * FROM inputs", "COMMAND"),
    ],
)
def test_writes_and_session_changes_are_refused(query: str, kind: str) -> None:
    with pytest.raises(WriteRefused, match=f"refused: .*{kind}"):
        check_read_only(query)


def test_bad_input_is_named() -> None:
    with pytest.raises(QueryError, match="does not parse"):
        check_read_only("SELECT (1")
    with pytest.raises(QueryError, match="one statement at a time"):
        check_read_only("SELECT 1; DROP TABLE inputs")
    with pytest.raises(QueryError, match="no SQL statement"):
        check_read_only("  -- nothing  ")


def test_table_output(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, POOL_QUERY, "--warehouse", str(warehouse))
    assert code == 0
    assert out.splitlines() == [
        "method | inputs | kept",
        "-------+--------+-----",
        "m1     |      4 |    2",
        "m2     |      2 |    1",
        "(2 rows)",
    ]


def test_csv_and_json_output(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sql(capsys, POOL_QUERY, "--warehouse", str(warehouse), "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [["method", "inputs", "kept"], ["m1", "4", "2"], ["m2", "2", "1"]]
    query = "SELECT input_id, answer, agreement, votes::JSON AS votes FROM curated_pool WHERE method = 'm2' ORDER BY 1"
    code, out, _ = sql(capsys, query, "--warehouse", str(warehouse), "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"input_id": "i1", "answer": "x", "agreement": 0.5, "votes": '{"x": 2, "y": 1}'},
        {"input_id": "i2", "answer": "z", "agreement": 0.25, "votes": '{"z": 1}'},
    ]


def test_writes_are_refused_and_nothing_changes(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sql(capsys, "DELETE FROM curated_pool", "--warehouse", str(warehouse))
    assert (code, out) == (2, "")
    assert "refused: DELETE" in err and "only reads" in err
    assert Warehouse(warehouse).count("curated_pool") == 6


def test_the_connection_is_read_only_too(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a write that got past the classifier meets DuckDB's read-only connection.
    monkeypatch.setattr("s2d_assets.sql.query.check_read_only", lambda query: None)
    with pytest.raises(duckdb.Error, match="read-only"):
        run_query(warehouse, "DELETE FROM curated_pool")
    assert Warehouse(warehouse).count("curated_pool") == 6


def test_missing_warehouse_and_sql_errors(tmp_path: Path, warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sql(capsys, "SELECT 1", "--warehouse", str(tmp_path / "none.duckdb"))
    assert code == 1 and "does not exist yet" in err
    code, _, err = sql(capsys, "SELECT * FROM no_such_table", "--warehouse", str(warehouse))
    assert code == 1 and "no_such_table" in err


def test_query_from_stdin(warehouse: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT count(*) AS n FROM inputs"))
    code, out, _ = sql(capsys, "-", "--warehouse", str(warehouse), "--format", "csv")
    assert (code, out.split()) == (0, ["n", "5"])


def test_readme_examples_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warehouse = fixture_warehouse(tmp_path / "warehouse.duckdb")
    for resolved in load_models(SQL_FOLDER, WAREHOUSE_TABLES):
        build_model(warehouse, resolved.model)
    readme = (PROJECT_ROOT / "README.md").read_text()
    examples = [shlex.split(line)[1:] for line in readme.splitlines() if line.startswith(".venv/bin/s2d sql ")]
    assert len(examples) >= 3
    for args in examples:
        code, out, err = sql(capsys, *args[1:], "--warehouse", str(warehouse.path))
        assert code == 0, (args, err)
        assert out.strip()
