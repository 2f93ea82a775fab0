"""Generation-only sweeps: where does System 2 beat System 1 on a model, before any distillation?

For every seed (replicate) of a sweep experiment and every task: the task's inputs, the System 1
baseline on the eval split, and each method's System 2 answer on the eval split (greedy, as the
evaluation stage decodes), written to the warehouse exactly as the pipeline's stages write them
(``inputs``, ``generations``). No System 2 samples on the train split, no pool, no training: a
setting costs its eval answers only, and the generation cache makes a re-run free. The results
document (``report/results_doc.py``) scores these generations per item and reports the paired gap.

    s2d sweep experiments/sweeps/coin_flip.yaml [more.yaml ...]

writes into the state folder (``$S2D_STATE`` or ``.s2d``). No Dagster here.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from s2d_assets.config.experiment import Experiment
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.generate import answer_eval_split, generate_system1_baseline
from s2d_assets.distill.inputs import write_inputs
from s2d_assets.distill.replicates import replicate_contexts
from s2d_assets.distill.rows import chain_rows, store_generations
from s2d_assets.methods.runner import Chain, ChainResult, chain_finish_reason, run_method
from s2d_assets.tasks import EVAL
from s2d_assets.tasks.base import answer_set

SELF_CONSISTENCY = "system2_sc"  # the system name of a self-consistent System 2 (plurality of N samples)


def run_sweep(
    experiment: Experiment, paths: StatePaths, log: bool = True, self_consistency: bool = False
) -> list[dict[str, object]]:
    """Inputs, System 1 and every method's System 2 answers on the eval split, for every seed and task;
    with ``self_consistency`` also each method's plurality answer over ``n_samples`` sampled chains."""
    summaries: list[dict[str, object]] = []
    for ctx in replicate_contexts(StageContext(experiment, paths)):
        base = ctx.base_model()
        for task in ctx.experiment.tasks:
            started = time.perf_counter()
            write_inputs(ctx, task)
            system1 = generate_system1_baseline(ctx, task, base).metadata
            rows = [{"method": "system1", **{k: system1[k] for k in ("n", "accuracy", "mean_tokens")}}]
            for method in ctx.experiment.methods:
                engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task}/{method}/eval")
                _, summary = answer_eval_split(ctx, task, method, "system2", ctx.method(method), engine)
                rows.append({"method": method, **{k: summary[k] for k in ("n", "accuracy", "mean_tokens")}})
                if self_consistency:
                    voted = self_consistent_eval(ctx, task, method, base)
                    rows.append({"method": f"{method}+sc", **voted})
            for row in rows:
                summaries.append({"experiment": ctx.experiment.name, "task": task, **row})
                if log:
                    print(
                        f"{ctx.experiment.name:28s} {task:20s} {row['method']:16s} n={row['n']:<4} "
                        f"accuracy={100 * float(row['accuracy']):5.1f}% tokens={float(row['mean_tokens']):6.1f}",
                        flush=True,
                    )
            if log:
                print(f"  ({time.perf_counter() - started:.0f}s)", flush=True)
    return summaries


def self_consistent_eval(ctx: StageContext, task_name: str, method_name: str, base: BaseModel) -> dict[str, float]:
    """System 2 with self-consistency on the eval split: ``n_samples`` chains per item at the sampling
    temperature, the plurality of the parsed answers (a tie or no parsed answer: no answer).

    Stored as one ``generations`` row per item (system ``system2_sc``): the vote counts as its output,
    the winner as its answer, and the tokens and seconds of all its samples (what the vote cost).
    """
    task, method = ctx.task(task_name), ctx.method(method_name)
    items = ctx.inputs(task_name, EVAL)
    n = ctx.experiment.n_samples
    engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}/eval-sc")
    sampling = ctx.experiment.sampling
    chains = [
        Chain(item["input_id"], item["prompt"], 0, sample, answer_set(task, item["meta"]))
        for item in items
        for sample in range(n)
    ]
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
    voted: list[ChainResult] = []
    answers: list[str | None] = []
    correct = 0
    for index, item in enumerate(items):
        samples = results[index * n : (index + 1) * n]
        parsed = [task.parse_answer(r.output, item["meta"]) for r in samples]
        votes = Counter(a for a in parsed if a is not None)
        ranked = votes.most_common(2)
        winner = ranked[0][0] if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]) else None
        step = {
            "name": "vote",
            "output": json.dumps(dict(votes)),
            "prompt_tokens": sum(r.prompt_tokens for r in samples),
            "completion_tokens": sum(r.completion_tokens for r in samples),
            "seconds": sum(r.seconds for r in samples),
            "finish_reason": chain_finish_reason([r.finish_reason for r in samples]),  # any sample truncated
        }
        voted.append(ChainResult(Chain(item["input_id"], item["prompt"]), steps=[step]))
        answers.append(winner)
        correct += bool(task.is_correct(winner, item["reference"]))
    rows = chain_rows(voted, answers, method.answer)
    frame = store_generations(ctx, task_name, method_name, SELF_CONSISTENCY, EVAL, rows)
    return {
        "n": len(items),
        "accuracy": correct / len(items) if items else 0.0,
        "mean_tokens": float(frame["completion_tokens"].mean() or 0.0) if items else 0.0,
    }
