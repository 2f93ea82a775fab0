"""Everything a run reads from the user, checked before the run starts; nothing is written.

``s2d run`` and ``s2d refresh`` call ``preflight`` after loading the experiment (which already
checked the experiment file and the SQL models) and before launching the run, so that a bad
task file, inbox file, exemplar file or model path is reported as one ``UserError`` while the
warehouse and the checkpoint folder are untouched. Each stage validates its own inputs whole
again before its single write, for runs started elsewhere (the UI, the schedule, the sensor).
"""

from __future__ import annotations

from pathlib import Path

from s2d_assets.core.checkpoints import clean_staging
from s2d_assets.core.errors import StateError, UserError
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.inputs import check_inputs

DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def check_warehouse_file(paths: StatePaths) -> None:
    """A warehouse that exists must at least look like a DuckDB file (deeper damage is found when it opens)."""
    path = paths.warehouse
    if not path.exists():
        return
    with path.open("rb") as handle:
        header = handle.read(12)
    if header[8:12] != DUCKDB_MAGIC:
        raise StateError(
            f"{path}: not a DuckDB database (damaged or replaced); move it aside "
            f"(mv {path} {path}.damaged) and run `s2d run` to rebuild it"
        )


def check_model(ctx: StageContext) -> None:
    spec = ctx.experiment.model
    if spec.source == "path" and not (Path(spec.path or "") / "config.json").is_file():
        raise UserError(f"{spec.path}: model.path is not a Hugging Face model directory (no config.json)")


def preflight(ctx: StageContext) -> None:
    """Check the state folder and every input of ``ctx.experiment``; raise the first ``UserError``."""
    clean_staging(ctx.paths)
    check_warehouse_file(ctx.paths)
    check_model(ctx)
    for name in ctx.experiment.methods:
        ctx.method(name)  # reads few-shot exemplar files
    for name in ctx.experiment.tasks:
        if ctx.task(name).needs_base_model:
            continue  # its inputs are answered by the base model during the run
        check_inputs(ctx, name)
