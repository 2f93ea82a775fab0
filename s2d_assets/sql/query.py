"""`s2d sql`: read-only SQL over the warehouse, printed as a table, CSV or JSON.

Two guards keep it read-only: sqlglot (and DuckDB's own parser) classify the statement, and only
one query (SELECT, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE) passes; the database is then
opened with a read-only connection, so DuckDB refuses any write that got through.

It reads the warehouse's read snapshot (``warehouse.read.duckdb``, published after every write),
never the warehouse a run is writing, so a query never blocks a run nor waits for one. The
connection is sandboxed (``SANDBOX``): no file system access beyond that database (``read_text``,
``read_csv``, ``glob``, another DuckDB file by path are refused), no extension installed or
loaded on demand, and the configuration locked so a query cannot undo it.

CSV keeps every float exactly (Python's shortest round-trip ``repr``); JSON is strict JSON
(NaN and infinities become ``null``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from s2d_assets.core.errors import UserError, one_line

FORMATS = ("table", "csv", "json")
DIALECT = "duckdb"
READ_ROOTS = (exp.Query, exp.Values, exp.Describe, exp.Show, exp.Summarize)
WRITE_NODES = (
    exp.DML,
    exp.DDL,
    exp.Copy,
    exp.Command,
    exp.Set,
    exp.Use,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Install,
    exp.Export,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.TruncateTable,
)


# DuckDB settings of every `s2d sql` connection: only the opened database can be read.
SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class QueryError(UserError):
    """A query that cannot run: it does not parse, or there is not exactly one statement."""


class WriteRefused(QueryError):
    """A statement that could change the warehouse or the session; `s2d sql` only reads."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class SqlSyntaxError(ValueError):
    """SQL sqlglot cannot read; the message is its description and where (line, column)."""


def parse_statements(sql: str) -> list[exp.Expression]:
    """The statements sqlglot reads in ``sql`` (DuckDB's dialect): the one parse behind `s2d sql` and the
    SQL models (``models.py``), each of which says how many statements it takes."""
    try:
        return [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f" (line {detail.get('line')}, column {detail.get('col')})" if detail else ""
        raise SqlSyntaxError(f"{detail.get('description', error)}{where}") from None


def check_read_only(sql: str) -> exp.Expression:
    """The single read-only statement in ``sql``, or an error saying why it is refused."""
    try:
        statements = parse_statements(sql)
    except SqlSyntaxError as error:
        raise QueryError(f"the query does not parse: {error}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time; got {len(statements)}")
    statement = statements[0]
    writes = [node for node in statement.walk() if isinstance(node, WRITE_NODES)]
    if not isinstance(statement, READ_ROOTS) or writes:
        kind = (writes[0] if writes else statement).key.upper()
        raise WriteRefused(
            f"refused: {kind} is not a read-only query. `s2d sql` only reads the warehouse "
            "(SELECT, FROM ..., VALUES, DESCRIBE, SHOW, SUMMARIZE); the pipeline's assets write it."
        )
    try:
        kinds = [s.type for s in duckdb.extract_statements(sql)]
    except duckdb.ParserException as error:
        raise QueryError(f"the query does not parse: {str(error).strip().splitlines()[0]}") from None
    if kinds != [duckdb.StatementType.SELECT]:
        raise WriteRefused(f"refused: DuckDB reads this as {', '.join(k.name for k in kinds)}, not a read-only query")
    return statement


def run_query(database: Path, sql: str) -> QueryResult:
    """Run one read-only query on a read-only, sandboxed connection to ``database`` (a DuckDB file)."""
    check_read_only(sql)
    if not database.is_file():
        raise QueryError(f"{database}: no such DuckDB file; run `s2d run` first to build the warehouse")
    try:
        con = duckdb.connect(str(database), read_only=True, config=dict(SANDBOX))
    except duckdb.Error as error:
        raise QueryError(f"{database}: cannot open it as a DuckDB database: {one_line(str(error))}") from None
    try:
        cursor = con.execute(sql)
        columns = [str(d[0]) for d in cursor.description or []]
        rows = cursor.fetchall()
    except duckdb.PermissionException as error:
        raise QueryError(f"refused: `s2d sql` reads only the warehouse ({one_line(str(error))})") from None
    except duckdb.Error as error:
        raise QueryError(f"the query failed: {one_line(str(error))}") from None
    finally:
        con.close()
    return QueryResult(columns, rows)


# -- rendering ---------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A strict-JSON-ready version of a DuckDB value (NaN and infinities become None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _text(value: Any, exact: bool = False) -> str:
    """A value as text: floats to 6 significant digits for display, or exactly (``repr``) when ``exact``."""
    if value is None:
        return "NULL"
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)
    if isinstance(value, float):
        return repr(value) if exact else f"{value:.6g}"
    return str(_plain(value))


def _clip(text: str, width: int) -> str:
    text = text.replace("\r", "").replace("\n", "\\n")
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def render_table(result: QueryResult, max_width: int = 60) -> str:
    """An aligned text table with a row count, cells clipped to ``max_width`` characters."""
    cells = [[_clip(_text(v), max_width) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(result.columns)]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in result.rows) and bool(result.rows)
        for i in range(len(result.columns))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)]
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    count = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"
    return "\n".join([line(result.columns), rule, *(line(row) for row in cells), count])


def render_csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _text(v, exact=True) for v in row])
    return buffer.getvalue().rstrip("\n")


def render_json(result: QueryResult) -> str:
    records = [dict(zip(result.columns, (_plain(v) for v in row), strict=True)) for row in result.rows]
    return json.dumps(records, indent=2, ensure_ascii=False, default=str, allow_nan=False)


def render_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 80) -> str:
    """A markdown table (for Dagster metadata previews)."""
    if not rows:
        return "(no rows)"

    def cell(value: Any) -> str:
        return _clip(_text(value), max_width).replace("|", "\\|")

    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "---|" * len(columns)
    return "\n".join([header, rule, *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)])


def render(result: QueryResult, fmt: str) -> str:
    if fmt == "csv":
        return render_csv(result)
    if fmt == "json":
        return render_json(result)
    return render_table(result)
