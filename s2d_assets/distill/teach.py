"""A taught System 2: the base model fine-tuned on programmatic step-by-step traces before the pipeline runs.

Not the paper's prompted setting. A model too small to reason when prompted (the embedded SmolLM2-135M
answers coin flip at chance with every System 2 prompt, docs/results.md) is first taught to write a
task family's reasoning: each input of ``teach.tasks`` is answered by its task's programmatic trace
(``Task.teaching_trace``), as the assistant's reply to ``teach.method``'s first prompt. The teaching
inputs must not overlap the experiment's own inputs; then the paper's pipeline runs unchanged with
the taught model as its base model, on new, unlabelled inputs.

The taught model is a content-addressed folder under the state folder (``models/taught/``), built
atomically like a checkpoint: an unchanged (base model, traces, training) reuses it. LoRA teaching
is merged into the weights, so the taught model is a plain Hugging Face directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from s2d_assets.config.training import TeachSpec
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import publish_checkpoint, read_manifest
from s2d_assets.core.errors import UserError
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.distill.sft import train_sft
from s2d_assets.methods import method_definition
from s2d_assets.methods.base import Step
from s2d_assets.methods.runner import CONTINUATION_SEPARATOR
from s2d_assets.tasks import TRAIN, build_task
from s2d_assets.tasks.base import normalize_prompt

TAUGHT = "taught"
MERGED_DTYPE = "float32"  # the taught weights' stored precision (see _merge)


class TeachingError(UserError):
    """The teaching section cannot be used as written; the message names the field."""


Conversation = tuple[tuple[str, str], ...]  # (role, content) messages, as a GenerationRequest holds them


def lessons(prompt: str, trace: str, answer: str, cue: str | None) -> list[tuple[Conversation, str]]:
    """What the taught model learns to say at each of the method's stages, in the chats the runner sends.

    A method whose answer stage continues the first step's turn (zero-shot CoT, RaR) gets two lessons:
    the trace, ending the turn, as the reply to the first prompt; and the answer, completing the stage's
    ``cue`` after that trace, exactly as the runner continues the turn. Any other method gets one: the
    trace followed by "The answer is <answer>.".
    """
    first: Conversation = (("user", prompt),)
    if cue is None:
        return [(first, f"{trace} The answer is {answer}.")]
    said = trace + CONTINUATION_SEPARATOR + cue
    return [(first, trace), ((*first, ("assistant", said)), f" {answer}.")]


def teaching_examples(spec: TeachSpec, experiment_prompts: Iterable[str]) -> list[tuple[Conversation, str]]:
    """(chat, lesson) pairs of every teaching task's train inputs; refused if any input is the experiment's own."""
    method = method_definition(spec.method)
    first = next(step for step in method.steps if isinstance(step, Step))
    answer_stage = next((s for s in method.steps if isinstance(s, Step) and s.continues == first.name), None)
    own = {normalize_prompt(prompt) for prompt in experiment_prompts}
    examples = []
    for name, task_spec in spec.tasks.items():
        task = build_task(task_spec)
        for item in task.build_inputs():
            if item.split != TRAIN:
                continue
            trace = task.teaching_trace(item.meta)
            if trace is None:
                raise TeachingError(f"model.teach.tasks.{name}: task kind {task.kind!r} has no programmatic trace")
            if normalize_prompt(item.prompt) in own:
                raise TeachingError(
                    f"model.teach.tasks.{name}: input {item.input_id} is also one of the experiment's inputs; "
                    "teach on a disjoint distribution (e.g. another number of people, or another seed)"
                )
            fields = {"answer_format": task.answer_format}
            cue = None if answer_stage is None else answer_stage.template.format(**fields)
            examples.extend(lessons(first.render(item.prompt, fields), trace, item.reference, cue))
    return examples


def taught_model(base: BaseModel, spec: TeachSpec, experiment_prompts: Iterable[str], root: Path) -> BaseModel:
    """The base model taught ``spec``'s traces, built once per content under ``root``."""
    examples = teaching_examples(spec, experiment_prompts)
    version = content_hash(
        {"base": base.fingerprint, "traces": rows_hash(examples), "training": spec.training.model_dump(mode="json")}
    )
    card = {
        "kind": TAUGHT,
        "base_model": base.name,
        "base_fingerprint": base.fingerprint,
        "method": spec.method,
        "tasks": {name: task.model_dump(mode="json") for name, task in spec.tasks.items()},
        "lessons": len(examples),  # two per teaching input when the method has an answer stage (lessons())
        "training": spec.training.model_dump(mode="json"),
        "dtype": MERGED_DTYPE if spec.training.mode == "lora" else "float32 (trained in place)",
        "note": "a taught System 2: fine-tuned on programmatic traces, not the paper's prompted setting",
    }

    def teach(staging: Path) -> None:
        metrics = train_sft(base.path, examples, spec.training, staging / "adapter")
        card.update({name: metrics[name] for name in ("train_loss", "train_steps", "precision")})
        if spec.training.mode == "lora":
            _merge(base.path, staging / "adapter", staging)
            shutil.rmtree(staging / "adapter")
        else:
            for path in (staging / "adapter").iterdir():
                path.rename(staging / path.name)
            (staging / "adapter").rmdir()

    folder = publish_checkpoint(root / base.name, version, teach, card)
    manifest = read_manifest(folder)
    return BaseModel(name=f"{base.name}-{TAUGHT}", path=folder, fingerprint=str(manifest["fingerprint"]))


def _merge(base_dir: Path, adapter_dir: Path, target: Path) -> None:
    """The LoRA adapter merged into the base weights and saved in float32 (``MERGED_DTYPE``).

    Saved in float32 even over a bf16 base: rounding the merged weights to bf16 (8 bits of mantissa)
    would drop LoRA updates smaller than about 1/256 of a weight.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.to(getattr(torch, MERGED_DTYPE)).save_pretrained(target)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(target)
