"""Supervised fine-tuning with TRL's ``SFTTrainer`` (PEFT LoRA or full): prompt -> completion pairs into a folder.

Plain Python with no stage context: the distillation stage (``train.py``), Ray Train workers
(``train_ray.py``) and the taught System 2 (``teach.py``) all train through ``train_sft``.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import TrainingSpec
from s2d_assets.core.hardware import training_precision
from s2d_assets.core.progress import report


def logging_steps(examples: int, spec: TrainingSpec, points: int = 50) -> int:
    """Log about ``points`` times over the whole training (every step when it is short)."""
    total = math.ceil(spec.epochs * math.ceil(examples / spec.batch_size))
    return max(1, total // points)


def _log_callback(log: list[dict[str, float]]):  # type: ignore[no-untyped-def]
    """A TRL/transformers callback that keeps loss and learning rate per logging step and reports progress."""
    from transformers import TrainerCallback

    class StepLog(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            report(f"training: {state.max_steps} step(s), {args.num_train_epochs:g} epoch(s)")

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            logs = logs or {}
            if "loss" not in logs:  # the final summary (train_loss, runtime) is not a step
                return
            entry = {"step": int(state.global_step), "epoch": round(float(logs.get("epoch", state.epoch or 0)), 4)}
            entry |= {name: float(logs[name]) for name in ("loss", "learning_rate", "grad_norm") if name in logs}
            log.append(entry)
            report(
                f"training step {entry['step']}/{state.max_steps}: loss {entry['loss']:.4f}"
                + (f", learning rate {entry['learning_rate']:.2e}" if "learning_rate" in entry else "")
            )

    return StepLog()


Prompt = str | Sequence[tuple[str, str]]  # one user message, or a chat of (role, content) messages


def _chat(prompt: Prompt) -> list[tuple[str, str]]:
    return [("user", prompt)] if isinstance(prompt, str) else list(prompt)


def to_dataset(examples: Sequence[tuple[Prompt, str]], tokenizer: Any):  # type: ignore[no-untyped-def]
    """Prompt-completion records, so TRL masks the loss on the prompt.

    Conversational records (TRL renders the chat) when every prompt ends with a user message. A prompt
    that ends with the assistant's own message is a continuation of that message, which TRL's
    conversational format cannot express: then every prompt is rendered to text as the transformers
    engine renders it for generation (``chat_text``) and TRL appends EOS to the completion.
    """
    from datasets import Dataset

    chats = [_chat(prompt) for prompt, _ in examples]
    if any(chat[-1][0] == "assistant" for chat in chats):
        from s2d_assets.engines.hf import chat_text

        records = [
            {"prompt": chat_text(tokenizer, chat), "completion": completion}
            for chat, (_, completion) in zip(chats, examples, strict=True)
        ]
    else:
        records = [
            {
                "prompt": [{"role": role, "content": content} for role, content in chat],
                "completion": [{"role": "assistant", "content": completion}],
            }
            for chat, (_, completion) in zip(chats, examples, strict=True)
        ]
    return Dataset.from_list(records)


def train_sft(
    base_model_dir: Path, examples: Sequence[tuple[Prompt, str]], spec: TrainingSpec, output_dir: Path
) -> dict[str, Any]:
    """Fine-tune on (prompt, completion) pairs and save to ``output_dir``; returns train metrics."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("cannot train on an empty distillation set")
    torch.set_num_threads(os.cpu_count() or 1)
    precision = training_precision(spec.precision, cuda=torch.cuda.is_available(), mode=spec.mode)
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
        logging_steps=logging_steps(len(examples), spec),
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        # Set on purpose, never left to TRL's default (bf16 autocast on every CPU, slow without native bf16).
        bf16=precision == "bf16",
        fp16=False,
        # TRL turns activation checkpointing on by default: it saves memory a 135M model does not need
        # and recomputes every forward pass (about 5 s a step even on a tiny model on 2 cores).
        activation_checkpointing=False,  # (transformers 5 name; gradient_checkpointing is its deprecated alias)
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
    log: list[dict[str, float]] = []
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=to_dataset(examples, tokenizer),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_log_callback(log)],
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
        "train_samples_per_second": round(float(result.metrics.get("train_samples_per_second", 0.0)), 2),
        "training_log": log,
    }


def _check_lengths(tokenizer, examples: Sequence[tuple[Prompt, str]], max_length: int) -> None:  # type: ignore[no-untyped-def]
    """Truncation would cut the answer off (TRL then drops the example): refuse instead.

    Each example is measured as TRL tokenizes it: a conversational one as the whole rendered chat, a
    continuation as the engine's rendering of its prompt, the completion and EOS.
    """
    from s2d_assets.engines.hf import chat_text

    for index, (prompt, completion) in enumerate(examples):
        chat = _chat(prompt)
        if chat[-1][0] == "assistant":
            text = chat_text(tokenizer, chat) + completion + tokenizer.eos_token
            length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            messages = [{"role": r, "content": c} for r, c in [*chat, ("assistant", completion)]]
            length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if length > max_length:
            raise ValueError(
                f"training example {index} is {length} tokens, over training.max_length={max_length}; "
                "raise training.max_length in the experiment file"
            )
