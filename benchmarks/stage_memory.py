"""Peak memory of one System 2 generation stage, run as the pipeline runs it.

Materialises a task's inputs and one method's ``s2_generations`` for an experiment into a
throw-away state folder (the model is provisioned there, or reused from ``--models-dir``) and
prints the process's peak resident memory and the stage's metadata.

    .venv/bin/python benchmarks/stage_memory.py --task last_letter --method rar_2step
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from s2d_assets import distill
from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, load_experiment
from s2d_assets.core.base_models import provision_embedded
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill import StageContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=DEFAULT_EXPERIMENT)
    parser.add_argument("--task", default="last_letter")
    parser.add_argument("--method", default="rar_2step")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/s2d-bench-models"))
    args = parser.parse_args()

    experiment = load_experiment(args.experiment)
    state = Path(tempfile.mkdtemp(prefix="s2d-stage-memory-"))
    try:
        paths = StatePaths(state)
        pipeline = StageContext(experiment, paths)
        base = provision_embedded(args.models_dir) if experiment.model.source == "embedded" else pipeline.base_model()
        distill.write_inputs(pipeline, args.task)
        distill.write_perturbed_inputs(pipeline, args.task)
        started = time.perf_counter()
        result = distill.generate_system2(pipeline, args.task, args.method, base)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(state, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"experiment {experiment.name}: {args.task}/{args.method}/s2_generations in {seconds:.0f} s")
    print(f"metadata: {result.metadata}")
    print(f"peak RSS: {peak:.0f} MiB; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
