"""Stage 2, perturbation: each train input and its perturbed variants, with answer maps back."""

from __future__ import annotations

import json

import polars as pl

from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult
from s2d_assets.distill.context import StageContext
from s2d_assets.tasks import TRAIN


def write_perturbed_inputs(ctx: StageContext, task_name: str) -> StageResult:
    """Variant 0 is the input itself; the task's declared perturbations add variants with answer maps."""
    task = ctx.task(task_name)
    rows = []
    for item in ctx.inputs(task_name, TRAIN):
        rows.append((item["input_id"], 0, item["prompt"], "{}"))
        for number, variant in enumerate(task.perturb(item["prompt"], item["meta"]), start=1):
            rows.append((item["input_id"], number, variant.prompt, json.dumps(variant.answer_map, sort_keys=True)))
    frame = (
        pl.DataFrame(
            rows,
            schema={"input_id": pl.String, "variant_id": pl.Int32, "prompt": pl.String, "answer_map": pl.String},
            orient="row",
        )
        .with_columns(pl.lit(task_name).alias("task"))
        .select("task", "input_id", "variant_id", "prompt", "answer_map")
    )
    ctx.warehouse.replace_rows("perturbed_inputs", {"task": task_name}, frame)
    inputs = frame.filter(pl.col("variant_id") == 0).height
    return StageResult(
        data_version=rows_hash(frame.select("input_id", "variant_id", "prompt", "answer_map").rows()),
        metadata={"rows": frame.height, "variants_per_input": round(frame.height / max(inputs, 1), 3)},
    )
