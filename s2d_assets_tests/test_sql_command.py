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
from s2d_assets.core.paths import PROJECT_ROOT
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
    rows = json.loads(out)
    # A JSON column comes out as its JSON text; the votes object lists its answers in no particular order.
    assert all(isinstance(row["votes"], str) for row in rows)
    assert [{**row, "votes": json.loads(row["votes"])} for row in rows] == [
        {"input_id": "i1", "answer": "x", "agreement": 0.5, "votes": {"x": 2, "y": 1}},
        {"input_id": "i2", "answer": "z", "agreement": 0.25, "votes": {"z": 1}},
    ]


def test_writes_are_refused_and_nothing_changes(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = sql(capsys, "DELETE FROM curated_pool", "--warehouse", str(warehouse))
    assert (code, out) == (2, "")
    assert "refused: DELETE" in err and "only reads" in err
    assert Warehouse(warehouse).count("curated_pool") == 6


def test_the_connection_is_read_only_too(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a write that got past the classifier meets DuckDB's read-only connection.
    monkeypatch.setattr("s2d_assets.sql.query.check_read_only", lambda query: None)
    with pytest.raises(QueryError, match="read-only"):
        run_query(warehouse, "DELETE FROM curated_pool")
    assert Warehouse(warehouse).count("curated_pool") == 6


def test_missing_warehouse_and_sql_errors(tmp_path: Path, warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = sql(capsys, "SELECT 1", "--warehouse", str(tmp_path / "none.duckdb"))
    assert code == 2 and "none.duckdb: no such DuckDB file" in err
    code, _, err = sql(capsys, "SELECT * FROM no_such_table", "--warehouse", str(warehouse))
    assert code == 2 and "no_such_table" in err and len(err.strip().splitlines()) == 1


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


# -- the sandbox ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_json_auto('/etc/os-release')",
        "SELECT * FROM read_parquet('/tmp/*.parquet')",
    ],
)
def test_files_outside_the_warehouse_are_refused(
    warehouse: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    code, out, err = sql(capsys, query, "--warehouse", str(warehouse))
    assert (code, out) == (2, "")
    assert "root:" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # DuckDB refuses the file (a bare path is not even looked up as a file: no such table).
    assert "file system operations are disabled" in err or "does not exist" in err


def test_another_duckdb_file_by_path_is_refused(tmp_path: Path, warehouse: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE secret AS SELECT 42 AS answer")
    for query in (f"SELECT * FROM '{other}'", f"SELECT * FROM read_duckdb('{other}', table_name='secret')"):
        code, out, err = sql(capsys, query, "--warehouse", str(warehouse))
        assert code == 2 and "42" not in out, (query, err)


def test_the_sandbox_cannot_be_undone_by_a_query(warehouse: Path) -> None:
    result = run_query(
        warehouse,
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('enable_external_access', 'lock_configuration', 'autoinstall_known_extensions', "
        "'autoload_known_extensions') ORDER BY name",
    )
    assert dict(result.rows) == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
    }
    with pytest.raises(QueryError):
        run_query(warehouse, "SELECT set_config('enable_external_access', 'true')")


def test_csv_floats_round_trip_exactly(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import random

    values = [random.Random(7).uniform(-1, 1) * 10 ** random.Random(i).randint(-300, 300) for i in range(50)]
    values += [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 123456789.123456789]
    query = "SELECT unnest([" + ", ".join(f"{v!r}::DOUBLE" for v in values) + "]) AS v"
    code, out, _ = sql(capsys, query, "--warehouse", str(warehouse), "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))[1:]
    assert [float(r[0]) for r in rows] == values
    assert all(float(r[0]).hex() == v.hex() for r, v in zip(rows, values, strict=True))


def test_json_is_valid_with_nan_and_infinity_as_null(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = (
        "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::DOUBLE AS c, 0.1::DOUBLE + 0.2::DOUBLE AS d, "
        "['nan'::DOUBLE, 1.5] AS e, {'x': 'inf'::DOUBLE} AS f"
    )
    code, out, _ = sql(capsys, query, "--warehouse", str(warehouse), "--format", "json")
    assert code == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    assert json.loads(out, parse_constant=refuse) == [
        {"a": None, "b": None, "c": None, "d": 0.30000000000000004, "e": [None, 1.5], "f": {"x": None}}
    ]


def test_query_file_errors_name_the_file(tmp_path: Path, warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = tmp_path / "bad.sql"
    query.write_text("DELETE FROM inputs")
    code, _, err = sql(capsys, "--file", str(query), "--warehouse", str(warehouse))
    assert code == 2 and f"{query}: refused: DELETE" in err
