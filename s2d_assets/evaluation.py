"""The evaluation stages: System 1, System 2 and the distilled System 1 on the eval split.

A mixin of ``Pipeline`` (``stages.py``), which provides the task, method, engine and warehouse
helpers used here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from s2d_assets.base_models import BaseModel
from s2d_assets.engines import CachedEngine
from s2d_assets.fingerprint import rows_hash
from s2d_assets.methods import SYSTEM1, MethodDefinition
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.stage_result import StageResult, markdown_table
from s2d_assets.tasks import EVAL
from s2d_assets.tasks.judging import position_metrics
from s2d_assets.training.checkpoints import read_manifest

if TYPE_CHECKING:
    from s2d_assets.stages import Pipeline

SYSTEM1_BASELINE = "system1"  # method name of the base model's direct answers


class EvaluationStages:
    def generate_system1_baseline(self: Pipeline, task_name: str, base: BaseModel) -> StageResult:
        engine = self._cached_engine(base.path, base.fingerprint, None, f"{task_name}/system1")
        frame, summary = self._evaluate_system(task_name, SYSTEM1_BASELINE, "system1", SYSTEM1, engine)
        return StageResult(
            data_version=rows_hash(frame.select("input_id", "output").rows()),
            metadata={**summary, **engine.stats.as_metadata()},
        )

    def _evaluate_system(
        self: Pipeline, task_name: str, method_name: str, system: str, method: MethodDefinition, engine: CachedEngine
    ) -> tuple[pl.DataFrame, dict[str, float]]:
        task = self.task(task_name)
        items = self._inputs(task_name, EVAL)
        chains = [Chain(item["input_id"], item["prompt"]) for item in items]
        temperature = self.experiment.evaluation.temperature
        results = run_method(
            method,
            chains,
            engine,
            temperature,
            self.experiment.sampling.top_p,
            self.experiment.seed,
            engine.model_fingerprint,
        )
        answers = [task.parse_answer(r.output, item["meta"]) for r, item in zip(results, items, strict=True)]
        frame = self._store_generations(task_name, method_name, system, EVAL, results, answers)
        correct = [task.is_correct(a, item["reference"]) for a, item in zip(answers, items, strict=True)]
        n = len(items)
        return frame, {
            "n": n,
            "accuracy": sum(correct) / n if n else 0.0,
            "mean_tokens": float(frame["completion_tokens"].mean() or 0.0) if n else 0.0,
            "seconds_per_item": float(frame["seconds"].mean() or 0.0) if n else 0.0,
        }

    def evaluate(self: Pipeline, task_name: str, method_name: str, base: BaseModel, checkpoint: Path) -> StageResult:
        s2_engine = self._cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}/eval")
        _, system2 = self._evaluate_system(task_name, method_name, "system2", self.method(method_name), s2_engine)
        manifest = read_manifest(checkpoint)
        if manifest["mode"] == "none":  # nothing was distilled: the base model answers
            distilled_engine = self._cached_engine(
                base.path, base.fingerprint, None, f"{task_name}/{method_name}/distilled"
            )
        else:
            adapter = checkpoint if manifest["mode"] == "lora" else None
            distilled_engine = self._cached_engine(
                base.path if adapter else checkpoint,
                str(manifest["fingerprint"]),
                adapter,
                f"{task_name}/{method_name}/distilled",
            )
        _, distilled = self._evaluate_system(task_name, method_name, "distilled", SYSTEM1, distilled_engine)
        baseline = self.warehouse.query(
            "SELECT output, answer, completion_tokens, seconds, input_id FROM generations "
            "WHERE task = ? AND method = ? AND system = 'system1' AND split = ?",
            [task_name, SYSTEM1_BASELINE, EVAL],
        )
        if baseline.height == 0:
            raise RuntimeError(
                f"{task_name}: the System 1 baseline generations are missing; materialise s1_generations first"
            )
        references = {i["input_id"]: i["reference"] for i in self._inputs(task_name, EVAL)}
        task = self.task(task_name)
        system1 = {
            "n": baseline.height,
            "accuracy": sum(
                task.is_correct(a, references[i]) for a, i in zip(baseline["answer"], baseline["input_id"], strict=True)
            )
            / baseline.height,
            "mean_tokens": float(baseline["completion_tokens"].mean() or 0.0),
            "seconds_per_item": float(baseline["seconds"].mean() or 0.0),
        }
        judged: dict[str, float | None] = {}
        if getattr(task, "kind", "") == "pairwise_judging":  # verdicts in both orders: position consistency
            base_engine = self._cached_engine(base.path, base.fingerprint, None, f"{task_name}/system1")
            eval_items = self._inputs(task_name, EVAL)
            for system, method, engine in (
                ("system1", SYSTEM1, base_engine),
                ("system2", self.method(method_name), s2_engine),
                ("distilled", SYSTEM1, distilled_engine),
            ):
                metrics = position_metrics(
                    task,  # type: ignore[arg-type]
                    method,
                    engine,
                    eval_items,
                    self.experiment.evaluation.temperature,
                    self.experiment.sampling.top_p,
                    self.experiment.seed,
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
        frame = pl.DataFrame(
            rows, schema_overrides={"checkpoint": pl.String, "n": pl.Int32, "train_examples": pl.Int32}
        )
        self.warehouse.replace_rows("evaluations", {"task": task_name, "method": method_name}, frame)
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
