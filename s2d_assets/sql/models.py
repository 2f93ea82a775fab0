"""SQL models: every ``*.sql`` file under ``dbt_like_sql/`` becomes a view or a table in the warehouse.

A file directly in the folder lands in the ``main`` schema; a file in a sub-folder lands in the
schema the sub-folder names (``dbt_like_sql/analytics/pool_summary.sql`` is
``analytics.pool_summary``). The leading ``--`` comment lines describe the model; a
``-- materialized: table`` line among them makes it a table (the default is a view).

Dependencies are read from the SQL with sqlglot, scope by scope: CTE names, aliases,
sub-queries, table functions (``read_parquet(...)``, ``range(...)``) and file scans
(``FROM 'x.csv'``) are not dependencies. A name resolves like DuckDB resolves it while the model is
built: a model of the same schema, then ``main`` (a model or a table the pipeline writes).
Anything that cannot load — SQL that does not parse, a table nothing produces, a cycle — is
refused at load with the file named. Plain Python; ``assets/sql_models.py`` wraps it for Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from s2d_assets.core.errors import UserError
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.sql.query import DIALECT, SqlSyntaxError, parse_statements

DEFAULT_SCHEMA = "main"
VIEW, TABLE = "view", "table"
MATERIALIZATIONS = (VIEW, TABLE)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_DIRECTIVE = re.compile(r"^materialized\s*:\s*(.*?)\s*$", re.IGNORECASE)
_FILE_SCAN = re.compile(r"[./\\]")  # FROM 'pools.parquet' is a DuckDB file scan, not a table
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog"})  # DuckDB's catalog views, always there


class SqlModelError(UserError):
    """A SQL model that cannot load; the message starts with the file."""


@dataclass(frozen=True, order=True)
class TableRef:
    """A table name as written in a query (lower-cased; ``schema`` is None when unqualified)."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class SqlModel:
    schema: str
    name: str
    path: Path
    sql: str  # the query as written, without a trailing semicolon
    normalized: str  # sqlglot's rendering: no comments, no layout
    materialized: str
    description: str
    refs: frozenset[TableRef]

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def quoted(self) -> str:
        return f'"{self.schema}"."{self.name}"'


@dataclass(frozen=True)
class ResolvedModel:
    """A model with its dependencies resolved: the SQL models and pipeline tables it reads."""

    model: SqlModel
    models: tuple[str, ...]  # relations of the SQL models it reads
    tables: tuple[str, ...]  # warehouse tables written by the pipeline's stages
    code_version: str


# -- parsing -----------------------------------------------------------------------------------------
def parse_query(sql: str, source: str) -> exp.Query:
    """The one SELECT query in ``sql``; ``source`` names the file in errors."""
    try:
        duckdb.extract_statements(sql)  # DuckDB's own parser is the judge of syntax
    except duckdb.ParserException as error:
        raise SqlModelError(f"{source}: SQL does not parse: {_first_line(str(error))}") from None
    try:
        statements = parse_statements(sql)
    except SqlSyntaxError as error:
        raise SqlModelError(f"{source}: SQL does not parse for dependency analysis: {error}") from None
    if len(statements) != 1:
        raise SqlModelError(f"{source}: a model is exactly one SELECT query; found {len(statements)} statements")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise SqlModelError(f"{source}: a model is one SELECT query, not {statement.key.upper()}")
    return statement


def table_references(sql: str, source: str = "<sql>") -> frozenset[TableRef]:
    """The tables a query reads, scope-aware: CTEs, aliases and table functions are not tables."""
    return _references(parse_query(sql, source), source)


def _references(statement: exp.Query, source: str) -> frozenset[TableRef]:
    try:
        scopes = traverse_scope(statement)
    except SqlglotError as error:
        raise SqlModelError(f"{source}: cannot analyse the query's scopes: {error}") from None
    refs: set[TableRef] = set()
    for scope in scopes:
        for node in scope.sources.values():
            if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
                continue  # a CTE or sub-query scope, or a table function
            if node.this.quoted and not node.db and _FILE_SCAN.search(node.name):
                continue
            if node.db.lower() in SYSTEM_SCHEMAS:
                continue
            if node.catalog:
                raise SqlModelError(
                    f"{source}: {node.sql(dialect=DIALECT)}: catalog-qualified names are not supported; "
                    "write schema.table"
                )
            refs.add(TableRef(node.db.lower() or None, node.name.lower()))
    return frozenset(refs)


def _header(text: str, source: str) -> tuple[str, str]:
    """(materialized, description) from the leading comment lines."""
    materialized, lines = VIEW, []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        body = stripped[2:].strip()
        directive = _DIRECTIVE.match(body)
        if directive is None:
            lines.append(body)
            continue
        materialized = directive.group(1).lower()
        if materialized not in MATERIALIZATIONS:
            raise SqlModelError(f"{source}: materialized must be 'view' or 'table', not {directive.group(1)!r}")
    return materialized, " ".join(line for line in lines if line)


def _query_body(text: str) -> str:
    lines = text.rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].strip().startswith("--")):
        lines.pop()
    return "\n".join(lines).rstrip().rstrip(";").rstrip()


def parse_model(path: Path, schema: str = DEFAULT_SCHEMA) -> SqlModel:
    source = str(path)
    for label, value in (("schema (sub-folder)", schema), ("model name (file name)", path.stem)):
        if not IDENTIFIER.match(value):
            raise SqlModelError(f"{source}: {label} {value!r} must be lower-case letters, digits and underscores")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SqlModelError(f"{path}: not UTF-8 text (offset {error.start}); save the file as UTF-8") from None
    materialized, description = _header(text, source)
    sql = _query_body(text)
    if not sql or all(line.strip().startswith("--") or not line.strip() for line in sql.splitlines()):
        raise SqlModelError(f"{source}: the file holds no query")
    statement = parse_query(sql, source)
    return SqlModel(
        schema=schema,
        name=path.stem,
        path=path,
        sql=sql,
        normalized=statement.sql(dialect=DIALECT, comments=False),
        materialized=materialized,
        description=description,
        refs=_references(statement, source),
    )


def discover_models(folder: Path) -> list[SqlModel]:
    """Every ``*.sql`` file of ``folder`` (top level: schema ``main``; a sub-folder: that schema)."""
    if not folder.is_dir():
        return []
    models = []
    for path in sorted(folder.rglob("*.sql")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if len(relative.parts) > 2:
            raise SqlModelError(f"{path}: a model sits in {folder} or in one sub-folder (its schema), not deeper")
        models.append(parse_model(path, relative.parts[0] if len(relative.parts) == 2 else DEFAULT_SCHEMA))
    return models


# -- resolving -----------------------------------------------------------------------------------------
def resolve_models(models: Sequence[SqlModel], tables: Collection[str]) -> list[ResolvedModel]:
    """Map every reference to a SQL model or a pipeline table; return the models upstream first.

    ``tables`` are the warehouse tables some asset writes (all in schema ``main``). A model's code
    version hashes its normalised SQL, its materialisation and the code versions of the SQL models
    it reads, so editing a model makes it and its SQL dependents stale at once.
    """
    by_relation: dict[str, SqlModel] = {}
    for model in models:
        if model.relation in by_relation:
            raise SqlModelError(
                f"{model.path}: model {model.relation} is also defined by {by_relation[model.relation].path}"
            )
        if model.schema == DEFAULT_SCHEMA and model.name in tables:
            raise SqlModelError(
                f"{model.path}: model {model.relation} would replace the pipeline's table {model.name}; rename the file"
            )
        by_relation[model.relation] = model
    model_deps: dict[str, set[str]] = {}
    table_deps: dict[str, set[str]] = {}
    for model in models:
        model_deps[model.relation], table_deps[model.relation] = set(), set()
        for ref in sorted(model.refs, key=str):
            kind, target = _resolve(ref, model, by_relation, tables)
            (model_deps if kind == "model" else table_deps)[model.relation].add(target)
    order = _topological_order(by_relation, model_deps)
    code_versions: dict[str, str] = {}
    resolved = []
    for relation in order:
        model = by_relation[relation]
        upstream = sorted(model_deps[relation])
        code_versions[relation] = content_hash(
            {
                "sql": model.normalized,
                "materialized": model.materialized,
                "reads": {dep: code_versions[dep] for dep in upstream},
            }
        )
        resolved.append(
            ResolvedModel(model, tuple(upstream), tuple(sorted(table_deps[relation])), code_versions[relation])
        )
    return resolved


def load_models(folder: Path, tables: Collection[str]) -> list[ResolvedModel]:
    return resolve_models(discover_models(folder), tables)


def _resolve(
    ref: TableRef, model: SqlModel, by_relation: dict[str, SqlModel], tables: Collection[str]
) -> tuple[str, str]:
    if ref.schema is not None:
        if str(ref) in by_relation:
            return "model", str(ref)
        if ref.schema == DEFAULT_SCHEMA and ref.name in tables:
            return "table", ref.name
    else:
        for schema in dict.fromkeys((model.schema, DEFAULT_SCHEMA)):
            if f"{schema}.{ref.name}" in by_relation:
                return "model", f"{schema}.{ref.name}"
        if ref.name in tables:
            return "table", ref.name
    raise SqlModelError(
        f"{model.path}: references table {ref}, which no asset produces "
        f"(warehouse tables: {', '.join(sorted(tables)) or 'none'}; "
        f"SQL models: {', '.join(sorted(by_relation)) or 'none'})"
    )


def _topological_order(by_relation: dict[str, SqlModel], deps: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" or "done"

    def visit(relation: str, path: list[str]) -> None:
        if state.get(relation) == "done":
            return
        if state.get(relation) == "visiting":
            cycle = [*path[path.index(relation) :], relation]
            files = ", ".join(str(by_relation[r].path) for r in dict.fromkeys(cycle))
            raise SqlModelError(
                f"{by_relation[relation].path}: cycle between SQL models: {' -> '.join(cycle)} ({files})"
            )
        state[relation] = "visiting"
        for dep in sorted(deps[relation]):
            visit(dep, [*path, relation])
        state[relation] = "done"
        order.append(relation)

    for relation in sorted(by_relation):
        visit(relation, [])
    return order


# -- building ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelBuild:
    """What building a model produced: its shape, a content hash and the first rows."""

    relation: str
    materialized: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    row_count: int
    data_version: str
    preview: list[tuple[Any, ...]]


def build_model(warehouse: Warehouse, model: SqlModel, preview_rows: int = 10) -> ModelBuild:
    """Create or replace the model's view or table in one transaction and describe what it holds."""
    with warehouse.transaction() as con:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{model.schema}"')
        # Unqualified names resolve in the model's schema first, then in main (as in resolve_models).
        con.execute(f"SET search_path = '{model.schema},{DEFAULT_SCHEMA}'")
        existing = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [model.schema, model.name],
        ).fetchone()
        if existing is not None:
            existing_kind = VIEW if existing[0] == "VIEW" else TABLE
            if existing_kind != model.materialized:
                con.execute(f"DROP {existing_kind.upper()} {model.quoted}")
        con.execute(f"CREATE OR REPLACE {model.materialized.upper()} {model.quoted} AS\n{model.sql}\n")
        columns = tuple((str(row[0]), str(row[1])) for row in con.execute(f"DESCRIBE {model.quoted}").fetchall())
        row = con.execute(f"SELECT count(*) FROM {model.quoted}").fetchone()
        row_count = int(row[0]) if row else 0
        ordered = con.execute(f"SELECT * FROM {model.quoted} ORDER BY ALL")
        data_version = rows_hash(chain([list(columns)], _rows(ordered)))
        preview = con.execute(f"SELECT * FROM {model.quoted} LIMIT {int(preview_rows)}").fetchall()
    return ModelBuild(model.relation, model.materialized, columns, row_count, data_version, preview)


def _rows(cursor: duckdb.DuckDBPyConnection, batch: int = 10_000) -> Iterator[tuple[Any, ...]]:
    while rows := cursor.fetchmany(batch):
        yield from rows


def _first_line(text: str) -> str:
    """DuckDB's parser message on one line: the error and the offending source line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    located = next((line for line in lines if line.startswith("LINE ")), None)
    return f"{lines[0]} ({located})" if lines and located else (lines[0] if lines else text)
