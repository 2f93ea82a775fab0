"""Dependency extraction from SQL: scope-aware, so only real tables count."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.sql.models import SqlModelError, TableRef, parse_model, table_references


def refs(sql: str) -> set[str]:
    return {str(ref) for ref in table_references(sql)}


def test_plain_select_and_from_first() -> None:
    assert refs("SELECT task, count(*) FROM curated_pool GROUP BY task") == {"curated_pool"}
    assert refs("FROM evaluations WHERE split = 'eval'") == {"evaluations"}


def test_cte_names_are_not_dependencies_but_what_they_read_is() -> None:
    sql = """
        WITH kept AS (SELECT * FROM curated_pool WHERE kept),
             per_task AS (SELECT task, count(*) AS n FROM kept GROUP BY task)
        SELECT * FROM per_task JOIN kept USING (task)
    """
    assert refs(sql) == {"curated_pool"}


def test_cte_shadowing_a_table_reads_the_table_inside_its_definition() -> None:
    assert refs("WITH inputs AS (SELECT * FROM inputs WHERE split = 'eval') SELECT * FROM inputs") == {"inputs"}


def test_recursive_cte_is_not_a_dependency() -> None:
    sql = "WITH RECURSIVE r AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM r WHERE k < 3) SELECT * FROM r"
    assert refs(sql) == set()


def test_joins_and_aliases() -> None:
    sql = """
        SELECT c.task, i.prompt, e.accuracy
        FROM curated_pool AS c
        JOIN inputs i ON c.task = i.task AND c.input_id = i.input_id
        LEFT JOIN evaluations e USING (task, method)
        CROSS JOIN distillation_set
    """
    assert refs(sql) == {"curated_pool", "inputs", "evaluations", "distillation_set"}


def test_subqueries_in_from_where_and_select() -> None:
    sql = """
        SELECT p.task,
               (SELECT max(accuracy) FROM evaluations e WHERE e.task = p.task) AS best
        FROM (SELECT * FROM curated_pool WHERE kept) AS p
        WHERE p.input_id IN (SELECT input_id FROM inputs WHERE split = 'train')
          AND EXISTS (SELECT 1 FROM generations g WHERE g.input_id = p.input_id)
    """
    assert refs(sql) == {"evaluations", "curated_pool", "inputs", "generations"}


def test_union_branches() -> None:
    sql = """
        SELECT task, input_id FROM inputs
        UNION ALL SELECT task, input_id FROM perturbed_inputs
        EXCEPT SELECT task, input_id FROM curated_pool
    """
    assert refs(sql) == {"inputs", "perturbed_inputs", "curated_pool"}


def test_table_functions_and_file_scans_are_not_dependencies() -> None:
    sql = """
        SELECT * FROM read_parquet('exports/pool.parquet') AS r
        JOIN range(10) AS t(k) ON true
        JOIN read_csv_auto('a.csv') ON true
        JOIN 'more/pools.json' ON true
        JOIN generate_series(1, 3) ON true,
        unnest([1, 2]) AS u(x)
        JOIN curated_pool ON true
        JOIN information_schema.tables AS t ON true
    """
    assert refs(sql) == {"curated_pool"}


def test_schema_qualified_names_keep_their_schema() -> None:
    found = table_references("SELECT * FROM analytics.pool_summary JOIN main.evaluations USING (task, method)")
    assert found == {TableRef("analytics", "pool_summary"), TableRef("main", "evaluations")}
    assert refs('SELECT * FROM "Analytics"."Pool_Summary"') == {"analytics.pool_summary"}


def test_catalog_qualified_names_are_refused() -> None:
    with pytest.raises(SqlModelError, match="catalog-qualified"):
        table_references("SELECT * FROM other.main.inputs")


def test_comments_are_ignored() -> None:
    sql = """
        -- SELECT * FROM llm_cache
        /* JOIN evaluations */
        SELECT task -- FROM distillation_set
        FROM curated_pool /* , inputs */
    """
    assert refs(sql) == {"curated_pool"}


def test_header_sets_materialization_and_description(tmp_path: Path) -> None:
    path = tmp_path / "kept.sql"
    path.write_text("-- Kept inputs per task.\n--   materialized:  TABLE\n\nSELECT * FROM curated_pool;\n-- end\n")
    model = parse_model(path, "analytics")
    assert (model.relation, model.materialized, model.description) == (
        "analytics.kept",
        "table",
        "Kept inputs per task.",
    )
    assert model.sql == "-- Kept inputs per task.\n--   materialized:  TABLE\n\nSELECT * FROM curated_pool"
    view = tmp_path / "v.sql"
    view.write_text("SELECT 1 AS x -- materialized: table (not a header line)\n")
    assert parse_model(view).materialized == "view"


def test_normalised_sql_ignores_layout_and_comments(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sql", tmp_path / "b.sql"
    a.write_text("SELECT task, count(*) AS n FROM curated_pool GROUP BY task")
    b.write_text("-- a comment\nselect task,\n       count(*) as n\n  from curated_pool  -- here\n group by task;\n")
    assert parse_model(a).normalized == parse_model(b).normalized
