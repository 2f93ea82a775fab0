"""The result tables, one writer each: ``generations`` (one row per answer) and ``evaluations`` (one row
per system, with its ``evaluation_groups``).

Every stage that answers or scores writes through these: the distillation stages (``generate.py``,
``evaluate.py``, ``sweep.py``) and Coconut's evaluation (``coconut/stages.py``). A column a stage does
not know (Coconut's answers have no finish reason) is NULL. No Dagster here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from s2d_assets.distill.context import StageContext
from s2d_assets.methods.runner import ChainResult

# the generations columns whose values may all be None (the rest always have their type)
GENERATION_TYPES = {"answer": pl.String, "cache_key": pl.String, "finish_reason": pl.String}
EVALUATION_SCHEMA = {
    "task": pl.String,
    "method": pl.String,
    "system": pl.String,
    "split": pl.String,
    "n": pl.Int32,
    "accuracy": pl.Float64,
    "mean_tokens": pl.Float64,
    "seconds_per_item": pl.Float64,
    "checkpoint": pl.String,
    "train_examples": pl.Int32,
    "status": pl.String,
    "majority_answer": pl.String,
    "majority_rate": pl.Float64,
    "top_answer": pl.String,
    "top_answer_share": pl.Float64,
    "answer_distribution": pl.String,
    "parse_rate": pl.Float64,
    "discarded": pl.Int32,
    "n_parsed": pl.Int32,
    "accuracy_parsed": pl.Float64,
    "n_truncated": pl.Int32,
    "n_unparsed_truncated": pl.Int32,
    "n_finish_unknown": pl.Int32,
    "truncation_rate": pl.Float64,
    "answer_mode": pl.String,
}
GROUP_SCHEMA = {
    "task": pl.String,
    "method": pl.String,
    "system": pl.String,
    "split": pl.String,
    "group_name": pl.String,
    "n": pl.Int32,
    "accuracy": pl.Float64,
    "majority_rate": pl.Float64,
    "top_answer_share": pl.Float64,
}


def chain_rows(results: Sequence[ChainResult], answers: Sequence[str | None], answer_mode: str) -> dict[str, list[Any]]:
    """The ``generations`` columns of a method's runs (``store_generations``' ``rows``)."""
    return {
        "input_id": [r.chain.input_id for r in results],
        "variant_id": [r.chain.variant_id for r in results],
        "sample_idx": [r.chain.sample_idx for r in results],
        "steps": [json.dumps(r.steps) for r in results],
        "output": [r.output for r in results],
        "answer": list(answers),
        "prompt_tokens": [r.prompt_tokens for r in results],
        "completion_tokens": [r.completion_tokens for r in results],
        "seconds": [r.seconds for r in results],
        "cache_key": [r.cache_key for r in results],
        "finish_reason": [r.finish_reason for r in results],  # "length": some step was cut at its budget
        "answer_mode": [answer_mode] * len(results),
    }


def store_generations(
    ctx: StageContext, task_name: str, method: str, system: str, split: str, rows: Mapping[str, Sequence[Any]]
) -> pl.DataFrame:
    """Replace one (task, method, system, split) slice of ``generations`` by ``rows`` (column -> values;
    no columns: the slice is emptied)."""
    n = len(next(iter(rows.values()))) if rows else 0
    where = {"task": task_name, "method": method, "system": system, "split": split}
    frame = pl.DataFrame(
        {**{column: [value] * n for column, value in where.items()}, **{k: list(v) for k, v in rows.items()}},
        schema_overrides={column: kind for column, kind in GENERATION_TYPES.items() if column in rows},
    )
    ctx.warehouse.replace_rows("generations", where, frame)
    return frame


def store_evaluations(
    ctx: StageContext,
    task_name: str,
    method: str,
    rows: Sequence[dict[str, Any]],
    group_rows: Sequence[dict[str, Any]] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replace the (task, method) slice of ``evaluations`` (a row per system) and ``evaluation_groups``
    (a row per system and group) in one transaction."""
    frame = pl.DataFrame(list(rows), schema=EVALUATION_SCHEMA)
    groups = pl.DataFrame(list(group_rows), schema=GROUP_SCHEMA)
    where = {"task": task_name, "method": method}
    ctx.warehouse.replace_tables([("evaluations", where, frame), ("evaluation_groups", where, groups)])
    return frame, groups
