"""Stage 7, evaluation: System 1, System 2 and the distilled System 1 on the labelled eval split.

Accuracy, mean generated tokens and seconds per item for each system; for pairwise judging also
the verdicts in both orders (position consistency).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import read_manifest
from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.generate import SYSTEM1_BASELINE, answer_eval_split
from s2d_assets.methods import SYSTEM1
from s2d_assets.tasks import EVAL
from s2d_assets.tasks.judging import position_metrics


def evaluate(ctx: StageContext, task_name: str, method_name: str, base: BaseModel, checkpoint: Path) -> StageResult:
    s2_engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}/eval")
    _, system2 = answer_eval_split(ctx, task_name, method_name, "system2", ctx.method(method_name), s2_engine)
    manifest = read_manifest(checkpoint)
    if manifest["mode"] == "none":  # nothing was distilled: the base model answers
        distilled_engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}/distilled")
    else:
        adapter = checkpoint if manifest["mode"] == "lora" else None
        distilled_engine = ctx.cached_engine(
            base.path if adapter else checkpoint,
            str(manifest["fingerprint"]),
            adapter,
            f"{task_name}/{method_name}/distilled",
        )
    _, distilled = answer_eval_split(ctx, task_name, method_name, "distilled", SYSTEM1, distilled_engine)
    system1 = _system1_summary(ctx, task_name)
    task = ctx.task(task_name)
    judged: dict[str, float | None] = {}
    if getattr(task, "kind", "") == "pairwise_judging":  # verdicts in both orders: position consistency
        base_engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/system1")
        eval_items = ctx.inputs(task_name, EVAL)
        for system, method, engine in (
            ("system1", SYSTEM1, base_engine),
            ("system2", ctx.method(method_name), s2_engine),
            ("distilled", SYSTEM1, distilled_engine),
        ):
            metrics = position_metrics(
                task,  # type: ignore[arg-type]
                method,
                engine,
                eval_items,
                ctx.experiment.evaluation.temperature,
                ctx.experiment.sampling.top_p,
                ctx.experiment.seed,
            )
            judged |= {f"{system}_{name}": value for name, value in metrics.items()}
    rows = [
        {
            "task": task_name,
            "method": method_name,
            "system": system,
            "split": EVAL,
            "checkpoint": str(checkpoint) if system == "distilled" else None,
            "train_examples": int(manifest["pool_size"]) if system == "distilled" else None,
            **values,
        }
        for system, values in (("system1", system1), ("system2", system2), ("distilled", distilled))
    ]
    frame = pl.DataFrame(rows, schema_overrides={"checkpoint": pl.String, "n": pl.Int32, "train_examples": pl.Int32})
    ctx.warehouse.replace_rows("evaluations", {"task": task_name, "method": method_name}, frame)
    table = frame.select(
        "system",
        "n",
        (pl.col("accuracy") * 100).round(1).alias("accuracy_%"),
        pl.col("mean_tokens").round(1),
        pl.col("seconds_per_item").round(3),
        "train_examples",
    )
    return StageResult(
        data_version=rows_hash(frame.select("system", "n", "accuracy", "mean_tokens").rows()),
        metadata={f"{row['system']}_accuracy": round(row["accuracy"], 4) for row in rows}
        | {"cache_misses": s2_engine.stats.misses + distilled_engine.stats.misses}
        | {key: value for key, value in judged.items() if value is not None},
        markdown={"evaluation": markdown_table(table)},
    )


def _system1_summary(ctx: StageContext, task_name: str) -> dict[str, float]:
    """The System 1 baseline's score, from the generations its own stage stored."""
    baseline = ctx.warehouse.query(
        "SELECT output, answer, completion_tokens, seconds, input_id FROM generations "
        "WHERE experiment = ? AND task = ? AND method = ? AND system = 'system1' AND split = ?",
        [ctx.experiment.name, task_name, SYSTEM1_BASELINE, EVAL],
    )
    if baseline.height == 0:
        raise RuntimeError(
            f"{task_name}: the System 1 baseline generations are missing; materialise s1_generations first"
        )
    references = {i["input_id"]: i["reference"] for i in ctx.inputs(task_name, EVAL)}
    task = ctx.task(task_name)
    correct = (task.is_correct(a, references[i]) for a, i in zip(baseline["answer"], baseline["input_id"], strict=True))
    return {
        "n": baseline.height,
        "accuracy": sum(correct) / baseline.height,
        "mean_tokens": float(baseline["completion_tokens"].mean() or 0.0),
        "seconds_per_item": float(baseline["seconds"].mean() or 0.0),
    }
