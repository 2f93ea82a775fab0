"""`s2d sql`: read-only SQL over the warehouse, printed as a table, CSV or JSON.

Two guards keep it read-only: sqlglot (and DuckDB's own parser) classify the statement, and only
one query (SELECT, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE) passes; the warehouse is then
opened with a read-only connection, so DuckDB refuses any write that got through. It works
whenever no run is writing (the connection waits for the writer's lock).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
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


class QueryError(ValueError):
    """A query that cannot run: it does not parse, or there is not exactly one statement."""


class WriteRefused(QueryError):
    """A statement that could change the warehouse or the session; `s2d sql` only reads."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def check_read_only(sql: str) -> exp.Expression:
    """The single read-only statement in ``sql``, or an error saying why it is refused."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        where = f" (line {detail.get('line')}, column {detail.get('col')})" if detail else ""
        raise QueryError(f"the query does not parse: {detail.get('description', error)}{where}") from None
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


def run_query(warehouse_path: Path, sql: str) -> QueryResult:
    """Run one read-only query on a read-only connection to the warehouse."""
    from s2d_assets.core.warehouse import Warehouse

    check_read_only(sql)
    with Warehouse(warehouse_path).connect(read_only=True) as con:
        cursor = con.execute(sql)
        columns = [str(d[0]) for d in cursor.description or []]
        rows = cursor.fetchall()
    return QueryResult(columns, rows)


# -- rendering ---------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A JSON-ready version of a DuckDB value."""
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


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:.6g}"
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
        writer.writerow(["" if v is None else _text(v) for v in row])
    return buffer.getvalue().rstrip("\n")


def render_json(result: QueryResult) -> str:
    records = [dict(zip(result.columns, (_plain(v) for v in row), strict=True)) for row in result.rows]
    return json.dumps(records, indent=2, ensure_ascii=False, default=str)


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


# -- command -----------------------------------------------------------------------------------------
def cmd_sql(args: argparse.Namespace) -> int:
    from s2d_assets.core.paths import state_paths

    sql = sys.stdin.read() if args.query == "-" else args.query
    warehouse = args.warehouse or state_paths().warehouse
    try:
        result = run_query(warehouse, sql)
    except QueryError as error:
        print(f"s2d sql: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"s2d sql: {error}", file=sys.stderr)
        return 1
    except duckdb.Error as error:
        print(f"s2d sql: {str(error).strip()}", file=sys.stderr)
        return 1
    print(render(result, args.format))
    return 0


def add_sql_command(commands: Any) -> None:
    """Register `s2d sql` on the CLI's sub-command parsers."""
    sql = commands.add_parser(
        "sql",
        help="run one read-only SQL query on the warehouse and print the result",
        description="Run one read-only query on the warehouse (writes are refused), e.g. "
        "s2d sql \"SELECT * FROM analytics.pool_summary\". Use '-' to read the query from stdin.",
    )
    sql.add_argument("query", help="the SQL query, or '-' to read it from stdin")
    sql.add_argument("--format", "-f", choices=FORMATS, default="table", help="output format (default: table)")
    sql.add_argument(
        "--warehouse", type=Path, default=None, help="DuckDB file (default: the state folder's warehouse.duckdb)"
    )
    sql.set_defaults(func=cmd_sql)
