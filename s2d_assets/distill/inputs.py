"""Stage 1, inputs: the task's generated or file inputs plus inbox arrivals, into ``inputs``."""

from __future__ import annotations

import json
from functools import partial

import polars as pl

from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.tasks.base import TaskInput, prompt_meta
from s2d_assets.tasks.inbox import combine_inputs, inbox_files, read_inbox_rows


def check_inputs(ctx: StageContext, task_name: str) -> tuple[list[TaskInput], int]:
    """The task's inputs plus its inbox arrivals, validated whole (a ``UserError`` names file and row).

    Nothing is written: ``s2d run`` and ``s2d refresh`` call this for every task before a run starts,
    and ``write_inputs`` before its single write. Returns the inputs and the number of inbox rows.
    """
    task = ctx.task(task_name)
    generated = task.build_inputs()
    arrived = [
        pair
        for path in inbox_files(ctx.paths.inbox / task_name)
        for pair in read_inbox_rows(path, task.kind, partial(prompt_meta, task))
    ]
    # Ids never reused, each question in one split only (the no_eval_leakage check verifies it again).
    return combine_inputs(generated, arrived), len(arrived)


def write_inputs(ctx: StageContext, task_name: str) -> StageResult:
    inputs, arrived = check_inputs(ctx, task_name)
    frame = pl.DataFrame(
        {
            "task": [task_name] * len(inputs),
            "split": [i.split for i in inputs],
            "input_id": [i.input_id for i in inputs],
            "prompt": [i.prompt for i in inputs],
            "reference": [i.reference for i in inputs],
            "meta": [json.dumps(i.meta) for i in inputs],
        }
    )
    ctx.warehouse.replace_rows("inputs", {"task": task_name}, frame)
    counts = frame.group_by("split").len().sort("split")
    return StageResult(
        data_version=rows_hash(frame.sort("input_id").rows()),
        metadata={"rows": frame.height, "inbox_rows": arrived, **{f"{s}_rows": n for s, n in counts.rows()}},
        markdown={"preview": markdown_table(frame.select("split", "input_id", "prompt", "reference").head(5))},
    )
