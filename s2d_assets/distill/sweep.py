"""Generation-only sweeps: where does System 2 beat System 1 on a model, before any distillation?

For every seed (replicate) of a sweep experiment and every task: the task's inputs, the System 1
baseline on the eval split, and each method's System 2 answer on the eval split (greedy, as the
evaluation stage decodes), written to the warehouse exactly as the pipeline's stages write them
(``inputs``, ``generations``). No System 2 samples on the train split, no pool, no training: a
setting costs its eval answers only, and the generation cache makes a re-run free. The results
document (``results_doc.py``) scores these generations per item and reports the paired gap.

    s2d sweep experiments/sweeps/coin_flip.yaml [more.yaml ...]   (or python -m s2d_assets.distill.sweep ...)

writes into the state folder (``$S2D_STATE`` or ``.s2d``). No Dagster here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from s2d_assets.config.experiment import Experiment, load_experiment
from s2d_assets.core.paths import StatePaths, state_paths
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.generate import answer_eval_split, generate_system1_baseline
from s2d_assets.distill.inputs import write_inputs
from s2d_assets.distill.replicates import replicate_contexts


def run_sweep(experiment: Experiment, paths: StatePaths, log: bool = True) -> list[dict[str, object]]:
    """Inputs, System 1 and every method's System 2 answers on the eval split, for every seed and task."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2d_assets.distill.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="sweep experiment files")
    args = parser.parse_args(argv)
    paths = state_paths()
    for path in args.experiments:
        run_sweep(load_experiment(path), paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
