"""`s2d results`: the evaluation table, read from the warehouse's read snapshot."""

from __future__ import annotations

from pathlib import Path

from s2d_assets.core.errors import UserError

RESULT_FORMATS = ("table", "csv", "json", "markdown")
# What was read beside accuracy (``distill/reading.py``): (shown as, evaluations column, expression); a warehouse
# from before a column shows NULL there. ``truncated_pct`` is NULL while any answer's end is unknown.
READ_COLUMNS = (
    ("parsed_pct", "parse_rate", "round(100 * parse_rate, 1)"),
    ("n_parsed", "n_parsed", "n_parsed"),
    ("accuracy_parsed_pct", "accuracy_parsed", "round(100 * accuracy_parsed, 1)"),
    ("truncated_pct", "truncation_rate", "round(100 * truncation_rate, 1)"),
)
READ_COLUMNS_SQL = "SELECT column_name FROM information_schema.columns WHERE table_name = 'evaluations'"


def print_results(warehouse_path: Path, experiment: str | None = None, fmt: str = "table") -> None:
    """The evaluation table (one experiment with its seeds' replicates, or all), read from the warehouse's read
    snapshot (never blocks a run)."""
    import duckdb
    import polars as pl

    from s2d_assets.core.warehouse import Warehouse
    from s2d_assets.distill.reading import NOT_KNOWN
    from s2d_assets.sql.query import SANDBOX, QueryResult, render_csv, render_json, render_markdown

    snapshot = Warehouse(warehouse_path).read_snapshot()
    with duckdb.connect(str(snapshot), read_only=True, config=dict(SANDBOX)) as con:
        present = {r[0] for r in con.execute(READ_COLUMNS_SQL).fetchall()}
        read = ", ".join(
            f"{expression if column in present else 'NULL'} AS {name}" for name, column, expression in READ_COLUMNS
        )
        table = con.sql(
            "SELECT experiment, task, method, system, n, round(100 * accuracy, 1) AS accuracy_pct, "
            f"{read}, round(mean_tokens, 1) AS mean_tokens, round(seconds_per_item, 3) AS seconds_per_item, "
            "round(100 * majority_rate, 1) AS majority_pct, train_examples "
            "FROM evaluations WHERE ?::VARCHAR IS NULL OR experiment = ? OR starts_with(experiment, ? || '.seed') "
            "ORDER BY experiment, task, method, CASE system WHEN 'system1' THEN 0 WHEN 'system2' THEN 1 ELSE 2 END",
            params=[experiment, experiment, experiment],
        ).pl()
        known = [row[0] for row in con.execute("SELECT DISTINCT experiment FROM evaluations ORDER BY 1").fetchall()]
    if experiment is not None and table.height == 0:
        raise UserError(
            f"no results for experiment {experiment!r} in {warehouse_path}; "
            + (f"experiments with results: {', '.join(known)}" if known else "run `s2d run` first")
        )
    if fmt in ("table", "markdown"):  # for people: an end nobody recorded is "n/a", not a blank
        unknown = pl.col("truncated_pct").cast(pl.String).fill_null(NOT_KNOWN)
        table = table.with_columns(
            pl.when(pl.col("accuracy_pct").is_null()).then(None).otherwise(unknown).alias("truncated_pct")
        )
    if fmt != "table":
        result = QueryResult(table.columns, table.rows())
        render = {"csv": render_csv, "json": render_json}.get(fmt)
        print(render(result) if render else render_markdown(result.columns, result.rows))
        return
    with pl.Config(
        tbl_rows=200, tbl_cols=-1, tbl_width_chars=220, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        print(
            "Evaluation (eval split; System 1 = base model direct answer, System 2 = the method, "
            "distilled = fine-tuned System 1). Beside accuracy (an unparsed answer counts as wrong): the share of "
            "answers that parsed, the accuracy over those n_parsed answers, the share cut off at the token "
            "budget (n/a: the engine did not record how its answers ended), generated tokens per item, and the "
            "majority-class rate (what always giving the eval split's most common answer scores):"
        )
        print(table)
