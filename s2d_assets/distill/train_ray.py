"""Stage 6 on several workers: the same TRL SFT (``sft.train_sft``) under Ray Train's ``TorchTrainer``.

``training.workers: N`` (N > 1) runs ``train_sft`` in N Ray Train workers, data parallel: Ray sets up
the process group (gloo on CPUs, NCCL when the cluster has a GPU per worker) and the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) that transformers' Trainer reads, so the Trainer wraps the
model in DDP and gives each worker its share of the examples. ``training.batch_size`` stays the global
batch: each worker takes ``ceil(batch_size / N)`` examples per step. Worker 0 reports the saved
adapter (or model) as a Ray Train checkpoint; it is copied into the checkpoint folder the stage
publishes, with the same files, model card and manifest as a single-process training.

The model is replicated on every worker (DDP), so this scales models that fit one device. Models
that do not (Llama-2-70B) need FSDP or DeepSpeed, which is not wired here (docs/scaling.md).
No Dagster here; the Ray cluster is the one ``engine.ray`` names (or the one this process is
already connected to).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from s2d_assets.config.engine import RayExecutorSpec
from s2d_assets.config.experiment import TrainingSpec
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.progress import report
from s2d_assets.engines.ray_executor import ensure_ray

TrainFn = Callable[[Path, Sequence[tuple[str, str]], TrainingSpec, Path], dict[str, Any]]
METRICS_FILE = "s2d_train_metrics.json"  # worker 0's metrics, carried in its Ray Train checkpoint


def worker_spec(spec: TrainingSpec) -> TrainingSpec:
    """One worker's share of the global batch (the training run inside a worker is single-worker)."""
    return spec.model_copy(update={"batch_size": math.ceil(spec.batch_size / spec.workers), "workers": 1})


def train_sft_ray(
    train_sft: TrainFn,
    base_model_dir: Path,
    examples: Sequence[tuple[str, str]],
    spec: TrainingSpec,
    output_dir: Path,
    cluster: RayExecutorSpec,
    storage: str,
) -> dict[str, Any]:
    """``train_sft`` (``sft.train_sft``) on ``spec.workers`` Ray Train workers; saved to ``output_dir``."""
    if not examples:
        raise ValueError("cannot train on an empty distillation set")
    ray = ensure_ray(cluster)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    gpu = ray.cluster_resources().get("GPU", 0) >= spec.workers
    cpus = max(1.0, cluster.cpus_per_replica) if gpu else cluster.cpus_per_replica
    name = f"sft-{content_hash([str(base_model_dir), list(examples), spec.model_dump(mode='json')], length=12)}"
    backend = "nccl" if gpu else "gloo"
    report(f"training: {spec.workers} Ray Train worker(s) ({backend}), {len(examples)} example(s)")
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={
            "train_sft": train_sft,
            "base_model_dir": str(base_model_dir),
            "examples": [list(example) for example in examples],
            "spec": worker_spec(spec).model_dump(mode="json"),
            "threads": max(1, int(cpus)),
        },
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=gpu, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=name, storage_path=storage),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name} ended without worker 0's checkpoint")
    result.checkpoint.to_directory(str(output_dir))
    metrics = json.loads((output_dir / METRICS_FILE).read_text())
    (output_dir / METRICS_FILE).unlink()
    shutil.rmtree(Path(storage) / name, ignore_errors=True)  # the copy in output_dir is the one kept
    return {**metrics, "workers": spec.workers}


def train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the single-process training, which the distributed environment makes DDP."""
    import ray.train

    train_sft: TrainFn = config["train_sft"]
    threads = int(config["threads"])
    os.cpu_count = lambda: threads  # train_sft takes os.cpu_count() threads: here, this worker's share
    rank = ray.train.get_context().get_world_rank()
    spec = TrainingSpec.model_validate(config["spec"])
    examples = [(str(prompt), str(answer)) for prompt, answer in config["examples"]]
    with tempfile.TemporaryDirectory(prefix=f"s2d-sft-rank{rank}-") as folder:
        out = Path(folder)
        metrics = train_sft(Path(config["base_model_dir"]), examples, spec, out)
        summary = {"train_loss": float(metrics["train_loss"])}
        if rank == 0:
            (out / METRICS_FILE).write_text(json.dumps(metrics))
            ray.train.report(summary, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(summary)
