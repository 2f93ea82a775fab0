"""Stage 5, the distillation set: the System 1 prompt -> the kept final answer, no intermediate tokens.

The prompt is the task's System 1 prompt (``methods/system1.py``: the judge instruction for pairwise
judging), the one the distilled model is evaluated on.
"""

from __future__ import annotations

import polars as pl

from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.methods import direct_prompt


def build_distillation_set(ctx: StageContext, task_name: str, method_name: str) -> StageResult:
    pool = ctx.warehouse.query(
        "SELECT c.input_id, i.prompt AS question, c.answer "
        "FROM curated_pool c JOIN inputs i USING (experiment, task, input_id) "
        "WHERE c.experiment = ? AND c.task = ? AND c.method = ? AND c.kept ORDER BY c.input_id",
        [ctx.experiment.name, task_name, method_name],
    )
    frame = pl.DataFrame(
        {
            "task": task_name,
            "method": method_name,
            "input_id": pool["input_id"],
            "prompt": [direct_prompt(q, ctx.task(task_name).judges_pairs) for q in pool["question"]],
            "completion": pool["answer"],
        },
        schema={
            "task": pl.String,
            "method": pl.String,
            "input_id": pl.String,
            "prompt": pl.String,
            "completion": pl.String,
        },
    )
    ctx.warehouse.replace_rows("distillation_set", {"task": task_name, "method": method_name}, frame)
    return StageResult(
        data_version=rows_hash(frame.select("input_id", "prompt", "completion").rows()),
        metadata={"examples": frame.height},
        markdown={"preview": markdown_table(frame.select("prompt", "completion").head(5))},
    )
