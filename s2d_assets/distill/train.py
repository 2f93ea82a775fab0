"""Stage 6, training: the base model fine-tuned (TRL ``SFTTrainer``, PEFT LoRA) on the distillation set.

The result is published atomically as a checkpoint folder under the state folder, with a model
card and a manifest; an unchanged (base model, data, training spec) reuses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import TrainingSpec
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import publish_checkpoint, read_manifest
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_image
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.sft import train_sft
from s2d_assets.distill.training_curve import training_curve_png

TRAINING_LOG = "training_log.json"  # loss and learning rate per logging step, kept in the checkpoint folder


def train_checkpoint(
    ctx: StageContext, task_name: str, method_name: str, base: BaseModel, lineage: dict[str, Any]
) -> StageResult:
    examples = ctx.warehouse.query(
        "SELECT prompt, completion FROM distillation_set WHERE experiment = ? AND task = ? AND method = ? "
        "ORDER BY input_id",
        [ctx.experiment.name, task_name, method_name],
    ).rows()
    spec = ctx.experiment.training
    version = content_hash(
        {"base": base.fingerprint, "data": rows_hash(examples), "training": spec.model_dump(mode="json")}
    )
    root = ctx.paths.checkpoint(ctx.experiment.name, task_name, method_name)
    metrics: dict[str, Any] = {}

    # An empty pool distils nothing: the "checkpoint" is the base model itself, recorded as such.
    mode = spec.mode if examples else "none"

    def train(staging: Path) -> None:
        if examples:
            metrics.update(_fit(ctx, base.path, [tuple(e) for e in examples], spec, staging))
            card["precision"] = metrics["precision"]  # recorded in the model card and the manifest
            (staging / TRAINING_LOG).write_text(json.dumps(metrics["training_log"], indent=1))

    card = {
        "experiment": ctx.experiment.name,
        "task": task_name,
        "method": method_name,
        "base_model": base.name,
        "base_fingerprint": base.fingerprint,
        "mode": mode,
        "pool_size": len(examples),
        **lineage,
    }
    checkpoint = publish_checkpoint(root, version, train, card)
    manifest = read_manifest(checkpoint)
    # The loss curve of the training that made this checkpoint, also when it is reused.
    log = metrics.pop("training_log", None) or read_training_log(checkpoint)
    markdown = {}
    if log:
        png = training_curve_png(log, f"{task_name} / {method_name}: SFT on {len(examples)} examples")
        markdown["loss_curve"] = markdown_image(png, "training loss and learning rate per step")
    return StageResult(
        data_version=str(manifest["fingerprint"]),
        metadata={
            "path": str(checkpoint),
            "examples": len(examples),
            "mode": mode,
            "trained_now": bool(metrics),
            **metrics,
            **({"training_log": log} if log else {}),
        },
        markdown=markdown,
    )


def read_training_log(checkpoint: Path) -> list[dict[str, float]]:
    path = checkpoint / TRAINING_LOG
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []


def _fit(
    ctx: StageContext, base_dir: Path, examples: Sequence[tuple[str, str]], spec: TrainingSpec, output_dir: Path
) -> dict[str, Any]:
    """In this process, or on ``training.workers`` Ray Train workers (``train_ray.py``)."""
    if spec.workers == 1:
        return train_sft(base_dir, examples, spec, output_dir)
    from s2d_assets.distill.train_ray import train_sft_ray

    cluster = ctx.experiment.engine.ray
    storage = f"{cluster.staging.rstrip('/')}/train" if cluster.staging else str(ctx.paths.ray_staging / "train")
    return train_sft_ray(train_sft, base_dir, examples, spec, output_dir, cluster, storage)
