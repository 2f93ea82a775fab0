"""The Coconut stages: functions of a ``StageContext`` over the warehouse, and their code versions (no Dagster).

data → starting model → curriculum stage 0 (CoT) … stage K, and the baselines (No-CoT, CoT,
pause tokens) trained from the same starting model on the same records and epochs → one
evaluation that writes each system's answers into ``generations`` and a row per system into
``evaluations`` (method ``coconut``), through the same row writers as distillation (``distill/rows.py``).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import polars as pl

from s2d_assets.coconut import prontoqa, prosqa
from s2d_assets.config.coconut import CoconutSpec, ProsQASpec
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import CURRENT, publish_checkpoint, read_manifest
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.rows import store_evaluations, store_generations
from s2d_assets.tasks.base import EVAL, TRAIN, input_id

METHOD = "coconut"
INIT = "init"
_WORD = re.compile(r"\w+|[^\w\s]")
_MARKER = re.compile(r"#\s*#\s*#")  # a word-level tokenizer decodes "###" as "# # #"


def stage_name(stage: int) -> str:
    return f"stage_{stage}"


def final_answer(text: str) -> str:
    """The answer after the last ``###``, as words and punctuation (tokenizer spacing does not matter)."""
    return " ".join(_WORD.findall(_MARKER.split(text)[-1]))


def generate_records(spec: CoconutSpec) -> list[dict[str, Any]]:
    task, n = spec.task, spec.task.train_size + spec.task.eval_size
    if isinstance(task, ProsQASpec):
        return prosqa.generate(n, task.seed, task.n_nodes, task.min_hops)
    return prontoqa.generate(n, task.seed, task.hops, task.distractor_hops)


def coconut_spec(ctx: StageContext) -> CoconutSpec:
    if ctx.experiment.coconut is None:
        raise ValueError(f"experiment {ctx.experiment.name!r} has no coconut section")
    return ctx.experiment.coconut


def _root(ctx: StageContext, name: str) -> Path:
    return ctx.paths.checkpoint(ctx.experiment.name, coconut_spec(ctx).task_name, METHOD, name)


def _current(ctx: StageContext, name: str) -> Path:
    link = _root(ctx, name) / CURRENT
    if not link.exists():
        raise FileNotFoundError(f"{link}: checkpoint {name!r} is not trained yet; materialise it first")
    return link.resolve()


# -- code versions -----------------------------------------------------------------------------
def data_version(spec: CoconutSpec) -> str:
    return content_hash(spec.task.model_dump(mode="json"))


def init_version(spec: CoconutSpec) -> str:
    return content_hash({"model": spec.model, "scratch": spec.scratch.model_dump(mode="json")})


def stage_version(spec: CoconutSpec, stage: int) -> str:
    curriculum = {"c": spec.thoughts_per_step, "max_stage": spec.max_stage, "stage": stage}
    return content_hash({"training": spec.training.model_dump(mode="json"), **curriculum})


def baseline_version(spec: CoconutSpec, system: str) -> str:
    pause = spec.n_thoughts if system == "pause" else 0
    return content_hash({"training": spec.training.model_dump(mode="json"), "system": system, "pause": pause})


def evaluation_version(spec: CoconutSpec) -> str:
    return content_hash([spec.max_new_tokens, spec.n_thoughts, sorted(spec.baselines), "greedy-v1"])


# -- stages ------------------------------------------------------------------------------------
def write_data(ctx: StageContext) -> StageResult:
    spec = coconut_spec(ctx)
    task, records, n_train = spec.task_name, generate_records(spec), spec.task.train_size
    frame = pl.DataFrame(
        {
            "task": task,
            "split": [TRAIN if i < n_train else EVAL for i in range(len(records))],
            "input_id": [input_id(task, r["question"]) for r in records],
            "prompt": [r["question"] for r in records],
            "reference": [r["answer"] for r in records],
            "meta": [json.dumps({"steps": r["steps"], **r["meta"]}) for r in records],
        }
    )
    ctx.warehouse.replace_rows("inputs", {"task": task}, frame)
    steps = [len(r["steps"]) for r in records]
    return StageResult(
        data_version=rows_hash(frame.select("split", "input_id", "prompt", "reference", "meta").rows()),
        metadata={
            "rows": frame.height,
            "train_rows": n_train,
            "eval_rows": frame.height - n_train,
            "mean_steps": round(sum(steps) / len(steps), 2),
            "max_steps": max(steps),
        },
        markdown={"example": _example_markdown(records[0])},
    )


def records(ctx: StageContext, split: str) -> list[dict[str, Any]]:
    task = coconut_spec(ctx).task_name
    items = ctx.inputs(task, split)
    if not items:
        raise RuntimeError(f"{task}: no {split} rows in the warehouse; materialise the coconut data first")
    return [
        {"input_id": i["input_id"], "question": i["prompt"], "steps": i["meta"]["steps"], "answer": i["reference"]}
        for i in items
    ]


def init_model(ctx: StageContext, base: BaseModel | None, lineage: dict[str, Any]) -> StageResult:
    from s2d_assets.coconut.model import ScratchConfig, add_special_tokens, scratch_model

    spec = coconut_spec(ctx)
    all_records = records(ctx, TRAIN) + records(ctx, EVAL)
    texts = [" ".join([r["question"], *r["steps"], "###", r["answer"]]) for r in all_records]
    source = base.fingerprint if base is not None else rows_hash(texts)
    version = content_hash({"init": init_version(spec), "source": source})

    def build(staging: Path) -> None:
        if spec.model == "scratch":
            s = spec.scratch
            config = ScratchConfig(s.hidden_size, s.layers, s.heads, s.intermediate_size, spec.training.seed)
            scratch_model(texts, config, staging)
        else:
            if base is None:
                raise ValueError("coconut.model is 'base' but no base model was given")
            add_special_tokens(base.path, staging)

    card = {
        "title": f"Coconut starting model: {spec.task_name}",
        "model": spec.model,
        "base_model": base.name if base else "scratch",
        "source": source,
        **lineage,
    }
    return _publish(ctx, INIT, version, build, card)


def train_stage(ctx: StageContext, stage: int, lineage: dict[str, Any]) -> StageResult:
    from s2d_assets.coconut.curriculum import TokenIds, curriculum, tokenize
    from s2d_assets.coconut.model import load_tokenizer

    spec = coconut_spec(ctx)
    previous = _current(ctx, INIT if stage == 0 else stage_name(stage - 1))
    tokenizer = load_tokenizer(previous)
    items = [tokenize(r, tokenizer) for r in records(ctx, TRAIN)]
    examples = curriculum(items, TokenIds.of(tokenizer), stage, spec.thoughts_per_step, spec.max_stage)
    card = {"stage": stage, "thoughts": stage * spec.thoughts_per_step, **lineage}
    epochs = spec.training.epochs_per_stage
    return _train(ctx, stage_name(stage), previous, examples, epochs, card, stage_version(spec, stage))


def train_baseline(ctx: StageContext, system: str, lineage: dict[str, Any]) -> StageResult:
    from s2d_assets.coconut.curriculum import TokenIds, build_example, tokenize
    from s2d_assets.coconut.model import load_tokenizer

    spec = coconut_spec(ctx)
    start = _current(ctx, INIT)
    tokenizer = load_tokenizer(start)
    ids = TokenIds.of(tokenizer)
    examples = [
        build_example(tokenize(r, tokenizer), ids, system, c=spec.thoughts_per_step, max_stage=spec.max_stage)  # type: ignore[arg-type]
        for r in records(ctx, TRAIN)
    ]
    card = {"system": system, **lineage}
    return _train(ctx, system, start, examples, spec.baseline_epochs, card, baseline_version(spec, system))


def _train(
    ctx: StageContext, name: str, start: Path, examples: list[Any], epochs: float, card: dict[str, Any], code: str
) -> StageResult:
    from s2d_assets.coconut.model import TrainConfig, train

    spec = coconut_spec(ctx)
    t = spec.training
    config = TrainConfig(
        epochs, t.learning_rate, t.batch_size, t.weight_decay, seed=t.seed, device=t.device, threads=t.threads
    )
    data = rows_hash((e.input_ids, e.labels) for e in examples)
    start_fingerprint = str(read_manifest(start)["fingerprint"])
    version = content_hash({"start": start_fingerprint, "data": data, "code": code, "epochs": epochs})
    metrics: dict[str, float] = {}

    def build(staging: Path) -> None:
        metrics.update(train(start, examples, config, staging))

    full_card = {
        "title": f"Coconut {name}: {spec.task_name}",
        "start_checkpoint": str(start),
        "start_fingerprint": start_fingerprint,
        "examples": len(examples),
        "epochs": epochs,
        **card,
    }
    started = time.perf_counter()
    result = _publish(ctx, name, version, build, full_card)
    result.metadata.update(metrics, examples=len(examples), seconds=round(time.perf_counter() - started, 1))
    return result


def _publish(ctx: StageContext, name: str, version: str, build: Any, card: dict[str, Any]) -> StageResult:
    checkpoint = publish_checkpoint(_root(ctx, name), version, build, card, write_card=_write_card)
    manifest = read_manifest(checkpoint)
    return StageResult(
        data_version=str(manifest["fingerprint"]), metadata={"path": str(checkpoint), "version": version}
    )


def evaluate(ctx: StageContext) -> StageResult:
    """Each system answers the eval split greedily: its ``generations`` rows, then one ``evaluations`` row each."""
    import torch

    from s2d_assets.coconut.curriculum import build_prompt, tokenize
    from s2d_assets.coconut.model import device_for, generate_all, load

    spec = coconut_spec(ctx)
    task, items = spec.task_name, records(ctx, EVAL)
    checkpoints = {system: _current(ctx, system) for system in spec.baselines}
    checkpoints[METHOD] = _current(ctx, stage_name(spec.max_stage))
    rows = []
    torch.set_num_threads(spec.training.threads or os.cpu_count() or 1)
    for system, checkpoint in checkpoints.items():
        coconut, tokenizer = load(checkpoint, device_for(spec.training.device))
        thoughts = spec.n_thoughts if system in ("pause", METHOD) else 0
        prompts = [build_prompt(tokenize(r, tokenizer), coconut.ids, system, thoughts) for r in items]  # type: ignore[arg-type]
        started = time.perf_counter()
        outputs = generate_all(coconut, prompts, spec.max_new_tokens, spec.eval_batch_size)
        seconds = (time.perf_counter() - started) / len(items)
        texts = [tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
        answers = [final_answer(text) for text in texts]
        # Tokens spent per item: generated tokens (with <eos>) plus the thoughts the model ran.
        spent = [len(o) + thoughts for o in outputs]
        correct = [answer == final_answer(r["answer"]) for answer, r in zip(answers, items, strict=True)]
        n = len(items)
        generations = {
            "input_id": [r["input_id"] for r in items],
            "variant_id": [0] * n,
            "sample_idx": [0] * n,
            "steps": [json.dumps([{"thoughts": thoughts}])] * n,
            "output": texts,
            "answer": answers,
            "prompt_tokens": [len(p.input_ids) for p in prompts],
            "completion_tokens": spent,
            "seconds": [seconds] * n,
            "cache_key": [None] * n,
        }
        store_generations(ctx, task, METHOD, system, EVAL, generations)
        rows.append(
            {
                "task": task,
                "method": METHOD,
                "system": system,
                "split": EVAL,
                "n": n,
                "accuracy": sum(correct) / n,
                "mean_tokens": sum(spent) / n,
                "seconds_per_item": seconds,
                "checkpoint": str(checkpoint),
                "train_examples": int(read_manifest(checkpoint).get("examples", 0)),
            }
        )
    frame, _ = store_evaluations(ctx, task, METHOD, rows)
    table = frame.select(
        "system",
        "n",
        (pl.col("accuracy") * 100).round(1).alias("accuracy_%"),
        pl.col("mean_tokens").round(1),
        pl.col("seconds_per_item").round(4),
    )
    return StageResult(
        data_version=rows_hash(frame.select("system", "n", "accuracy", "mean_tokens").rows()),
        metadata={f"{row['system']}_accuracy": round(row["accuracy"], 4) for row in rows},
        markdown={"evaluation": markdown_table(table)},
    )


def _example_markdown(record: dict[str, Any]) -> str:
    steps = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(record["steps"]))
    return f"**question** {record['question']}\n\n**steps**\n\n{steps}\n\n**answer** {record['answer']}"


def _write_card(directory: Path, card: dict[str, Any]) -> None:
    lineage = "\n".join(f"| {key} | {value} |" for key, value in card.items() if key != "title")
    (directory / "README.md").write_text(
        f"---\nlibrary_name: transformers\ntags: [s2d, coconut, continuous-thought]\n---\n\n# {card['title']}\n\n"
        "Chain of continuous thought (Coconut, arXiv 2412.06769): between <bot> and <eot> the model feeds its "
        "last hidden state back as the next input embedding instead of decoding a token.\n\n"
        "## Lineage\n\n| field | value |\n|---|---|\n" + lineage + "\n"
    )
