"""SQL model assets: one asset per ``dbt_like_sql/**/*.sql`` file, keyed ``<schema>/<name>``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dagster import (
    AssetKey,
    AssetsDefinition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from s2d_assets.core.paths import PROJECT_ROOT
from s2d_assets.defs.automation import eager_or_code_changed
from s2d_assets.defs.common import WRITER_POOL, experiment_key
from s2d_assets.defs.resources import WarehouseResource
from s2d_assets.defs.tables import WAREHOUSE_TABLES
from s2d_assets.sql.models import ResolvedModel, build_model, load_models
from s2d_assets.sql.query import render_markdown

SQL_FOLDER = PROJECT_ROOT / "dbt_like_sql"
SQL_GROUP = "sql"


def sql_model_key(experiment: str, relation: str) -> AssetKey:
    return experiment_key(experiment, *relation.split("."))


def sql_model_assets(
    experiment: str, folder: Path, producers: Mapping[str, Sequence[AssetKey]]
) -> list[AssetsDefinition]:
    """Every SQL model of ``folder``; ``producers`` maps each pipeline table to the assets that write it.

    A model may read any warehouse table; one that no asset of this experiment writes (the pools in
    an experiment without System 2 tasks) adds no upstream asset and reads as empty.
    """
    tables = set(producers) | WAREHOUSE_TABLES
    return [_model_asset(experiment, resolved, producers) for resolved in load_models(folder, tables)]


def _model_asset(
    experiment: str, resolved: ResolvedModel, producers: Mapping[str, Sequence[AssetKey]]
) -> AssetsDefinition:
    model = resolved.model
    deps = [sql_model_key(experiment, relation) for relation in resolved.models]
    deps += [key for table in resolved.tables for key in producers.get(table, ())]

    @asset(
        key=sql_model_key(experiment, model.relation),
        deps=list(dict.fromkeys(deps)),
        group_name=SQL_GROUP,
        pool=WRITER_POOL,
        code_version=resolved.code_version,
        kinds={"sql", "duckdb"},
        description=model.description or f"SQL model {model.relation} ({model.path.name}).",
        automation_condition=eager_or_code_changed(),  # rebuilt whenever a table it reads was rewritten
        metadata={
            "path": MetadataValue.path(str(model.path)),
            "relation": model.relation,
            "materialized": model.materialized,
            "sql": MetadataValue.md(f"```sql\n{model.sql}\n```"),
        },
    )
    def sql_model(warehouse: WarehouseResource) -> MaterializeResult:
        built = build_model(warehouse.warehouse(), model)
        return MaterializeResult(
            metadata={
                "dagster/row_count": built.row_count,
                "relation": built.relation,
                "materialized": built.materialized,
                "dagster/column_schema": TableSchema([TableColumn(name, kind) for name, kind in built.columns]),
                "preview": MetadataValue.md(render_markdown([name for name, _ in built.columns], built.preview)),
            },
            data_version=DataVersion(built.data_version),
        )

    return sql_model
