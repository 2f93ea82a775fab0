"""Stage 3, generation: N System 2 samples per train input and variant, and the System 1 baseline."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.rows import chain_rows, store_generations
from s2d_assets.methods import MethodDefinition, system1_for
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.tasks import EVAL, TRAIN, Task
from s2d_assets.tasks.base import answer_set

SYSTEM1_BASELINE = "system1"  # method name of the base model's direct answers


def generate_system2(ctx: StageContext, task_name: str, method_name: str, base: BaseModel) -> StageResult:
    task, method = ctx.task(task_name), ctx.method(method_name)
    variants = ctx.warehouse.query(
        "SELECT p.input_id, p.variant_id, p.prompt, i.meta FROM perturbed_inputs p "
        "JOIN inputs i USING (experiment, task, input_id) WHERE p.experiment = ? AND p.task = ? "
        "ORDER BY p.input_id, p.variant_id",
        [ctx.experiment.name, task_name],
    )
    metas = {
        (row["input_id"], row["variant_id"]): _variant_meta(task, row["prompt"], row["meta"], row["variant_id"])
        for row in variants.iter_rows(named=True)
    }
    chains = [
        Chain(
            row["input_id"],
            row["prompt"],
            row["variant_id"],
            sample,
            answer_set(task, metas[(row["input_id"], row["variant_id"])]),
        )
        for row in variants.iter_rows(named=True)
        for sample in range(ctx.experiment.n_samples)
    ]
    engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}")
    sampling = ctx.experiment.sampling
    results = run_method(
        method,
        chains,
        engine,
        sampling.temperature,
        sampling.top_p,
        ctx.experiment.seed,
        engine.model_fingerprint,
        task.answer_format,
    )
    answers = [task.parse_answer(r.output, metas[(r.chain.input_id, r.chain.variant_id)]) for r in results]
    frame = store_generations(
        ctx, task_name, method_name, "system2", TRAIN, chain_rows(results, answers, method.answer)
    )
    parsed = sum(a is not None for a in answers)
    return StageResult(
        data_version=rows_hash(
            frame.select("input_id", "variant_id", "sample_idx", "output")
            .sort("input_id", "variant_id", "sample_idx")
            .rows()
        ),
        metadata={
            "rows": frame.height,
            "parse_rate": round(parsed / max(len(answers), 1), 4),
            "mean_completion_tokens": round(float(frame["completion_tokens"].mean() or 0.0), 2),
            **engine.stats.as_metadata(),
        },
        markdown={"preview": markdown_table(frame.select("input_id", "sample_idx", "answer", "output").head(5))},
    )


def generate_system1_baseline(ctx: StageContext, task_name: str, base: BaseModel) -> StageResult:
    engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/system1")
    method = system1_for(ctx.task(task_name).judges_pairs, ctx.experiment.evaluation.system1_answer)
    frame, summary = answer_eval_split(ctx, task_name, SYSTEM1_BASELINE, "system1", method, engine)
    return StageResult(
        data_version=rows_hash(frame.select("input_id", "output").rows()),
        metadata={**summary, **engine.stats.as_metadata()},
    )


def answer_eval_split(
    ctx: StageContext, task_name: str, method_name: str, system: str, method: MethodDefinition, engine: Any
) -> tuple[pl.DataFrame, dict[str, float]]:
    """One system answers the labelled eval split once; stored in ``generations`` and scored."""
    task = ctx.task(task_name)
    items = ctx.inputs(task_name, EVAL)
    chains = [Chain(item["input_id"], item["prompt"], answer_set=answer_set(task, item["meta"])) for item in items]
    results = run_method(
        method,
        chains,
        engine,
        ctx.experiment.evaluation.temperature,
        ctx.experiment.sampling.top_p,
        ctx.experiment.seed,
        engine.model_fingerprint,
        task.answer_format,
    )
    answers = [task.parse_answer(r.output, item["meta"]) for r, item in zip(results, items, strict=True)]
    frame = store_generations(ctx, task_name, method_name, system, EVAL, chain_rows(results, answers, method.answer))
    correct = [task.is_correct(a, item["reference"]) for a, item in zip(answers, items, strict=True)]
    n = len(items)
    return frame, {
        "n": n,
        "accuracy": sum(correct) / n if n else 0.0,
        "mean_tokens": float(frame["completion_tokens"].mean() or 0.0) if n else 0.0,
        "seconds_per_item": float(frame["seconds"].mean() or 0.0) if n else 0.0,
    }


def _variant_meta(task: Task, prompt: str, meta: str | None, variant_id: int) -> dict[str, Any]:
    """A perturbed variant is parsed with what its own prompt says (e.g. its swapped option texts)."""
    base = json.loads(meta or "{}")
    return {**base, **task.meta_for_prompt(prompt)} if variant_id else base
