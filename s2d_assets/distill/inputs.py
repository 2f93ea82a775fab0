"""Stage 1, inputs: the task's generated or file inputs plus inbox arrivals, into ``inputs``."""

from __future__ import annotations

import json
from functools import partial

import polars as pl

from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.tasks.base import prompt_meta
from s2d_assets.tasks.inbox import inbox_files, read_inbox_file


def write_inputs(ctx: StageContext, task_name: str) -> StageResult:
    task = ctx.task(task_name)
    generated = task.build_inputs()
    # Inbox files are validated whole before anything is written (an InboxError names file and row).
    arrived = [
        item
        for path in inbox_files(ctx.paths.inbox / task_name)
        for item in read_inbox_file(path, task.kind, partial(prompt_meta, task))
    ]
    seen: set[str] = set()
    inputs = []
    for item in generated + arrived:
        if item.input_id not in seen:
            seen.add(item.input_id)
            inputs.append(item)
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
        metadata={"rows": frame.height, "inbox_rows": len(arrived), **{f"{s}_rows": n for s, n in counts.rows()}},
        markdown={"preview": markdown_table(frame.select("split", "input_id", "prompt", "reference").head(5))},
    )
