"""Generation on a local Ray cluster with 1 and with 2 CPU replicas, against the in-process engine.

The same work for all three: Rephrase-and-Respond prompts of the last-letter and coin-flip tasks,
N samples each, sampling at temperature 0.7 and top-p 0.95, through the embedded SmolLM2-135M-Instruct
(the real model, not the tiny test one). The Ray runs go through ``RayExecutor`` exactly as a stage's
misses do (requests staged as Parquet, the project's engine in ``map_batches`` actors, results
written with checkpointing and read back), so their time includes Ray Data's job start-up and each
replica's model load. Every run decodes batches of ``--batch-size`` requests. The runs:

- in process, with 2 threads and with 1 thread;
- Ray, 1 replica with 1 CPU (1 thread) and 2 replicas with 1 CPU each: the same per-replica work,
  one worker against two;
- Ray, 1 replica with 2 CPUs (2 threads): the same cores as two replicas, in one process.

    .venv/bin/python benchmarks/ray_scaling.py                # 16 prompts x 4 samples, 48 new tokens
    .venv/bin/python benchmarks/ray_scaling.py --prompts 4 --samples 2 --max-new-tokens 16   # a quick look

Needs the ray extra (make setup-ray). Each sample is a function of its seed and of the arithmetic
it runs on: a replica with another number of torch threads may sum in another order and, in bf16,
draw another token somewhere. The last column counts the texts equal to the in-process run's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine_throughput import questions  # this folder is on sys.path when a benchmark runs

from s2d_assets.config.engine import TransformersEngineSpec
from s2d_assets.core.base_models import provision_embedded
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.engines.cache import miss_order
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.engines.ray_executor import RayExecutor


@dataclass
class Run:
    name: str
    rows: int
    tokens: int
    seconds: float
    texts: dict[str, str]
    threads: int  # torch threads per engine

    def line(self) -> str:
        return (
            f"| {self.name} | {self.rows} | {self.tokens} | {self.seconds:.1f} | {self.rows / self.seconds:.2f} | "
            f"{self.tokens / self.seconds:.1f} |"
        )


def requests(prompts: int, samples: int, max_new_tokens: int) -> list[tuple[str, GenerationRequest]]:
    texts = questions(prompts)  # the same prompts as the engine throughput benchmark
    params = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=max_new_tokens)
    made = [
        GenerationRequest.user(text, params, sample_idx=s, seed=derive_seed(0, s, text))
        for text in texts
        for s in range(samples)
    ]
    return sorted(((r.cache_key("bench"), r) for r in made), key=miss_order)


def in_process(model: Path, work: list[tuple[str, GenerationRequest]], batch: int, threads: int) -> Run:
    started = time.perf_counter()
    engine = TransformersEngine.from_dir(model, "bench", dtype="auto", max_batch=batch)
    import torch

    torch.set_num_threads(threads)
    texts, tokens = {}, 0
    for start in range(0, len(work), batch):
        part = work[start : start + batch]
        for (key, _), completion in zip(part, engine.generate([r for _, r in part]), strict=True):
            texts[key], tokens = completion.text, tokens + completion.completion_tokens
    return Run(f"in process, {threads} thread(s)", len(work), tokens, time.perf_counter() - started, texts, threads)


def on_ray(model: Path, work: list[tuple[str, GenerationRequest]], batch: int, cpus: int, replicas: int) -> Run:
    spec = TransformersEngineSpec(
        dtype="auto",
        batch_size=batch,
        executor="ray",
        ray={"replicas": replicas, "cpus_per_replica": cpus / replicas},
    )
    staging = tempfile.mkdtemp(prefix="s2d-ray-bench-")
    try:
        started = time.perf_counter()
        result = RayExecutor(spec, str(model), None, staging).generate("bench", f"bench-{replicas}", work)
        seconds = time.perf_counter() - started
        result.finish()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert not result.failures, result.failures
    tokens = sum(c.completion_tokens for c in result.completions.values())
    texts = {key: c.text for key, c in result.completions.items()}
    per = cpus / replicas
    return Run(f"Ray, {replicas} replica(s) x {per:g} CPU", len(work), tokens, seconds, texts, int(per))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models-dir", type=Path, default=Path(".s2d/models"))
    args = parser.parse_args()

    import ray

    model = provision_embedded(args.models_dir).path
    work = requests(args.prompts, args.samples, args.max_new_tokens)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{platform.node()} {model_name}, {os.cpu_count()} cores; {now}")
    print(f"work: {len(work)} requests ({args.prompts} prompts x {args.samples}), <= {args.max_new_tokens} new tokens")
    print(f"load average before: {load()}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = [
        in_process(model, work, args.batch_size, threads=2),
        in_process(model, work, args.batch_size, threads=1),
        on_ray(model, work, args.batch_size, cpus=1, replicas=1),
        on_ray(model, work, args.batch_size, cpus=2, replicas=2),
        on_ray(model, work, args.batch_size, cpus=2, replicas=1),
    ]
    ray.shutdown()
    print(f"load average after: {load()}")
    references = {run.threads: run.texts for run in runs[:2]}
    print("| run | rows | tokens | seconds | rows/s | tokens/s | texts as in process, same threads |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        reference = references[run.threads]
        same = sum(run.texts[key] == text for key, text in reference.items())
        print(f"{run.line()} {same}/{len(reference)} |")


if __name__ == "__main__":
    main()
