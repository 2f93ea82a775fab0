"""Supervised fine-tuning of the base model on the curated pool, with TRL (and PEFT LoRA)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from s2d_assets.experiment import TrainingSpec


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
) -> dict[str, float]:
    """Fine-tune on (prompt, final answer) pairs and save to ``output_dir``; returns train metrics."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("cannot train on an empty distillation set")
    torch.set_num_threads(os.cpu_count() or 1)
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
    return {"train_loss": float(result.training_loss), "train_steps": float(result.global_step)}


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
