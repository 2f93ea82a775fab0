"""The ``export_pools`` job: curated pools and distillation sets written out from the UI.

Launch it from the UI (*Jobs* > ``export_pools`` > *Launchpad*, op ``write_exports``) with a format and, optionally,
the pools to export (all of the experiment's by default). Each export goes under the state
folder, ``<state>/exports/<experiment>/<task>/<method>/<stage>/<format>/``, with its dataset card;
``s2d export`` does the same from the command line, to any folder.
"""

from pathlib import Path
from typing import Literal

from dagster import AssetKey, Config, DagsterInstance, JobDefinition, OpExecutionContext, ResourceParam, job, op
from pydantic import Field

from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.lineage import provenance
from s2d_assets.distill.context import StageContext
from s2d_assets.report.export import EXPORTABLE, PoolRef, read_pool, write_export

EXPORT_POOLS = "export_pools"  # the job
EXPORT_OP = "write_exports"  # its one op (names are unique across jobs and ops)


class ExportConfig(Config):
    format: Literal["parquet", "jsonl", "hf"] = "parquet"
    # e.g. "default/coin_flip/rar_1step/curated_pool"; empty: every pool of the experiment
    pools: list[str] = Field(default_factory=list)


def export_dir(paths: StatePaths, ref: PoolRef, fmt: str) -> Path:
    """Where the UI's export of ``ref`` goes: always inside the state folder."""
    return paths.inside(paths.root / "exports" / Path(*ref.parts) / fmt)


def export_one(instance: DagsterInstance, warehouse: Path, ref: PoolRef, fmt: str, out_dir: Path) -> list[Path]:
    """Rows from the warehouse, the filter and lineage from the instance, written with the dataset card."""
    frame = read_pool(warehouse, ref)
    found = provenance(instance, AssetKey(list(ref.parts)))
    return write_export(frame, ref, fmt, out_dir, found.curation, found.lineage)


@op(name=EXPORT_OP, description="Write curated pools / distillation sets with a dataset card under <state>/exports.")
def export_pools_op(context: OpExecutionContext, config: ExportConfig, s2d: ResourceParam[StageContext]) -> None:
    experiment = s2d.experiment
    refs = [PoolRef.parse(text) for text in config.pools] or [
        PoolRef(experiment.name, task, method, stage)
        for task in experiment.tasks
        for method in experiment.methods
        for stage in EXPORTABLE
    ]
    for ref in refs:
        written = export_one(
            context.instance, s2d.paths.warehouse, ref, config.format, export_dir(s2d.paths, ref, config.format)
        )
        context.log.info(f"exported {ref} as {config.format}: {', '.join(str(p) for p in written)}")


def export_job() -> JobDefinition:
    @job(name=EXPORT_POOLS, description="Export curated pools and distillation sets (Parquet, JSONL, datasets).")
    def export_pools() -> None:
        export_pools_op()

    return export_pools
