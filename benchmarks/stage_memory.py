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

from s2d_assets.base_models import provision_embedded
from s2d_assets.experiment import DEFAULT_EXPERIMENT, load_experiment
from s2d_assets.stages import Pipeline
from s2d_assets.state import StatePaths


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
        pipeline = Pipeline(experiment, paths)
        base = provision_embedded(args.models_dir) if experiment.model.source == "embedded" else pipeline.base_model()
        pipeline.write_inputs(args.task)
        pipeline.write_perturbed_inputs(args.task)
        started = time.perf_counter()
        result = pipeline.generate_system2(args.task, args.method, base)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(state, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"experiment {experiment.name}: {args.task}/{args.method}/s2_generations in {seconds:.0f} s")
    print(f"metadata: {result.metadata}")
    print(f"peak RSS: {peak:.0f} MiB; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
