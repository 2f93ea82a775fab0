"""Stage 6, training: the base model fine-tuned (TRL ``SFTTrainer``, PEFT LoRA) on the distillation set.

The result is published atomically as a checkpoint folder under the state folder, with a model
card and a manifest; an unchanged (base model, data, training spec) reuses it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import TrainingSpec
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import publish_checkpoint, read_manifest
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.core.hardware import training_precision
from s2d_assets.core.stage_result import StageResult
from s2d_assets.distill.context import StageContext


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
            metrics.update(train_sft(base.path, [tuple(e) for e in examples], spec, staging))
            card["precision"] = metrics["precision"]  # recorded in the model card and the manifest

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
    return StageResult(
        data_version=str(manifest["fingerprint"]),
        metadata={
            "path": str(checkpoint),
            "examples": len(examples),
            "mode": mode,
            "trained_now": bool(metrics),
            **metrics,
        },
    )


def to_dataset(examples: Sequence[tuple[str, str]]):  # type: ignore[no-untyped-def]
    """Conversational prompt-completion records, so TRL masks the loss on the prompt."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": answer}]}
            for prompt, answer in examples
        ]
    )


def train_sft(
    base_model_dir: Path, examples: Sequence[tuple[str, str]], spec: TrainingSpec, output_dir: Path
) -> dict[str, Any]:
    """Fine-tune on (prompt, final answer) pairs and save to ``output_dir``; returns train metrics."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("cannot train on an empty distillation set")
    torch.set_num_threads(os.cpu_count() or 1)
    precision = training_precision(spec.precision, cuda=torch.cuda.is_available())
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _check_lengths(tokenizer, examples, spec.max_length)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    config = SFTConfig(
        output_dir=str(output_dir / "trainer"),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        lr_scheduler_type="constant_with_warmup" if spec.mode == "lora" else "linear",
        warmup_steps=2,
        max_length=spec.max_length,
        seed=spec.seed,
        data_seed=spec.seed,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        # Set on purpose, never left to TRL's default (bf16 autocast on every CPU, slow without native bf16).
        bf16=precision == "bf16",
        fp16=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    peft_config = (
        LoraConfig(
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        if spec.mode == "lora"
        else None
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=to_dataset(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    result = trainer.train()
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    shutil.rmtree(output_dir / "trainer", ignore_errors=True)
    return {
        "train_loss": float(result.training_loss),
        "train_steps": float(result.global_step),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
    }


def _check_lengths(tokenizer, examples: Sequence[tuple[str, str]], max_length: int) -> None:  # type: ignore[no-untyped-def]
    """Truncation would cut the answer off (TRL then drops the example): refuse instead."""
    for index, (prompt, answer) in enumerate(examples):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if length > max_length:
            raise ValueError(
                f"distillation example {index} is {length} tokens, over training.max_length={max_length}; "
                "raise training.max_length in the experiment file"
            )
