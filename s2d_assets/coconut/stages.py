"""The Coconut stages as plain functions over the warehouse (no Dagster here).

data → starting model → curriculum stage 0 (CoT) … stage K, and the baselines (No-CoT, CoT,
pause tokens) trained from the same starting model on the same records and epochs → one
evaluation that writes a row per system into ``evaluations`` (method ``coconut``).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from s2d_assets.coconut import prontoqa, prosqa
from s2d_assets.config.coconut import CoconutSpec, ProsQASpec
from s2d_assets.config.experiment import Experiment
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import CURRENT, publish_checkpoint, read_manifest
from s2d_assets.core.fingerprint import content_hash, rows_hash
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.core.warehouse import Warehouse
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


@dataclass
class CoconutPipeline:
    experiment: Experiment
    paths: StatePaths

    @property
    def spec(self) -> CoconutSpec:
        if self.experiment.coconut is None:
            raise ValueError(f"experiment {self.experiment.name!r} has no coconut section")
        return self.experiment.coconut

    @property
    def task(self) -> str:
        return self.spec.task_name

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse, experiment=self.experiment.name)

    def root(self, name: str) -> Path:
        return self.paths.checkpoint(self.experiment.name, self.task, METHOD, name)

    def current(self, name: str) -> Path:
        link = self.root(name) / CURRENT
        if not link.exists():
            raise FileNotFoundError(f"{link}: checkpoint {name!r} is not trained yet; materialise it first")
        return link.resolve()

    # -- code versions -------------------------------------------------------------------------
    def data_version(self) -> str:
        return content_hash(self.spec.task.model_dump(mode="json"))

    def init_version(self) -> str:
        spec = self.spec
        return content_hash({"model": spec.model, "scratch": spec.scratch.model_dump(mode="json")})

    def stage_version(self, stage: int) -> str:
        spec = self.spec
        curriculum = {"c": spec.thoughts_per_step, "max_stage": spec.max_stage, "stage": stage}
        return content_hash({"training": spec.training.model_dump(mode="json"), **curriculum})

    def baseline_version(self, system: str) -> str:
        spec = self.spec
        pause = spec.n_thoughts if system == "pause" else 0
        return content_hash({"training": spec.training.model_dump(mode="json"), "system": system, "pause": pause})

    def evaluation_version(self) -> str:
        spec = self.spec
        return content_hash([spec.max_new_tokens, spec.n_thoughts, sorted(spec.baselines), "greedy-v1"])

    # -- stages --------------------------------------------------------------------------------
    def write_data(self) -> StageResult:
        records = generate_records(self.spec)
        n_train = self.spec.task.train_size
        frame = pl.DataFrame(
            {
                "task": self.task,
                "split": [TRAIN if i < n_train else EVAL for i in range(len(records))],
                "input_id": [input_id(self.task, r["question"]) for r in records],
                "prompt": [r["question"] for r in records],
                "reference": [r["answer"] for r in records],
                "meta": [json.dumps({"steps": r["steps"], **r["meta"]}) for r in records],
            }
        )
        self.warehouse.replace_rows("inputs", {"task": self.task}, frame)
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

    def records(self, split: str) -> list[dict[str, Any]]:
        frame = self.warehouse.query(
            "SELECT input_id, prompt, reference, meta FROM inputs WHERE experiment = ? AND task = ? AND split = ? "
            "ORDER BY input_id",
            [self.experiment.name, self.task, split],
        )
        if frame.height == 0:
            raise RuntimeError(f"{self.task}: no {split} rows in the warehouse; materialise the coconut data first")
        records = []
        for row in frame.iter_rows(named=True):
            meta = json.loads(row["meta"])
            records.append(
                {
                    "input_id": row["input_id"],
                    "question": row["prompt"],
                    "steps": meta["steps"],
                    "answer": row["reference"],
                }
            )
        return records

    def init_model(self, base: BaseModel | None, lineage: dict[str, Any]) -> StageResult:
        from s2d_assets.coconut.model import ScratchConfig, add_special_tokens, scratch_model

        spec = self.spec
        all_records = self.records(TRAIN) + self.records(EVAL)
        texts = [" ".join([r["question"], *r["steps"], "###", r["answer"]]) for r in all_records]
        source = base.fingerprint if base is not None else rows_hash(texts)
        version = content_hash({"init": self.init_version(), "source": source})

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
            "title": f"Coconut starting model: {self.task}",
            "model": spec.model,
            "base_model": base.name if base else "scratch",
            "source": source,
            **lineage,
        }
        return self._publish(INIT, version, build, card)

    def train_stage(self, stage: int, lineage: dict[str, Any]) -> StageResult:
        from s2d_assets.coconut.curriculum import TokenIds, curriculum, tokenize
        from s2d_assets.coconut.model import load_tokenizer

        spec = self.spec
        previous = self.current(INIT if stage == 0 else stage_name(stage - 1))
        tokenizer = load_tokenizer(previous)
        records = self.records(TRAIN)
        items = [tokenize(r, tokenizer) for r in records]
        examples = curriculum(items, TokenIds.of(tokenizer), stage, spec.thoughts_per_step, spec.max_stage)
        return self._train(
            stage_name(stage),
            previous,
            examples,
            spec.training.epochs_per_stage,
            {"stage": stage, "thoughts": stage * spec.thoughts_per_step, **lineage},
            self.stage_version(stage),
        )

    def train_baseline(self, system: str, lineage: dict[str, Any]) -> StageResult:
        from s2d_assets.coconut.curriculum import TokenIds, build_example, tokenize
        from s2d_assets.coconut.model import load_tokenizer

        spec = self.spec
        start = self.current(INIT)
        tokenizer = load_tokenizer(start)
        ids = TokenIds.of(tokenizer)
        examples = [
            build_example(tokenize(r, tokenizer), ids, system, c=spec.thoughts_per_step, max_stage=spec.max_stage)  # type: ignore[arg-type]
            for r in self.records(TRAIN)
        ]
        return self._train(
            system, start, examples, spec.baseline_epochs, {"system": system, **lineage}, self.baseline_version(system)
        )

    def _train(
        self, name: str, start: Path, examples: list[Any], epochs: float, card: dict[str, Any], code: str
    ) -> StageResult:
        from s2d_assets.coconut.model import TrainConfig, train

        t = self.spec.training
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
            "title": f"Coconut {name}: {self.task}",
            "start_checkpoint": str(start),
            "start_fingerprint": start_fingerprint,
            "examples": len(examples),
            "epochs": epochs,
            **card,
        }
        started = time.perf_counter()
        result = self._publish(name, version, build, full_card)
        result.metadata.update(metrics, examples=len(examples), seconds=round(time.perf_counter() - started, 1))
        return result

    def _publish(self, name: str, version: str, build: Any, card: dict[str, Any]) -> StageResult:
        checkpoint = publish_checkpoint(self.root(name), version, build, card, write_card=_write_card)
        manifest = read_manifest(checkpoint)
        return StageResult(
            data_version=str(manifest["fingerprint"]),
            metadata={"path": str(checkpoint), "version": version},
        )

    def evaluate(self) -> StageResult:
        import torch

        from s2d_assets.coconut.curriculum import build_prompt, tokenize
        from s2d_assets.coconut.model import device_for, generate_all, load

        spec = self.spec
        records = self.records(EVAL)
        checkpoints = {system: self.current(system) for system in spec.baselines}
        checkpoints[METHOD] = self.current(stage_name(spec.max_stage))
        rows, generations = [], []
        torch.set_num_threads(spec.training.threads or os.cpu_count() or 1)
        for system, checkpoint in checkpoints.items():
            coconut, tokenizer = load(checkpoint, device_for(spec.training.device))
            thoughts = spec.n_thoughts if system in ("pause", METHOD) else 0
            prompts = [build_prompt(tokenize(r, tokenizer), coconut.ids, system, thoughts) for r in records]  # type: ignore[arg-type]
            started = time.perf_counter()
            outputs = generate_all(coconut, prompts, spec.max_new_tokens, spec.eval_batch_size)
            seconds = (time.perf_counter() - started) / len(records)
            texts = [tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
            # Tokens spent per item: generated tokens (with <eos>) plus the thoughts the model ran.
            spent = [len(o) + thoughts for o in outputs]
            correct = [final_answer(t) == final_answer(r["answer"]) for t, r in zip(texts, records, strict=True)]
            manifest = read_manifest(checkpoint)
            rows.append(
                {
                    "task": self.task,
                    "method": METHOD,
                    "system": system,
                    "split": EVAL,
                    "n": len(records),
                    "accuracy": sum(correct) / len(records),
                    "mean_tokens": sum(spent) / len(spent),
                    "seconds_per_item": seconds,
                    "checkpoint": str(checkpoint),
                    "train_examples": int(manifest.get("examples", 0)),
                }
            )
            for record, prompt, text, n_tokens in zip(records, prompts, texts, spent, strict=True):
                generations.append(
                    {
                        "task": self.task,
                        "method": METHOD,
                        "system": system,
                        "split": EVAL,
                        "input_id": record["input_id"],
                        "variant_id": 0,
                        "sample_idx": 0,
                        "steps": json.dumps([{"thoughts": thoughts}]),
                        "output": text,
                        "answer": final_answer(text),
                        "prompt_tokens": len(prompt.input_ids),
                        "completion_tokens": n_tokens,
                        "seconds": seconds,
                        "cache_key": None,
                    }
                )
        frame = pl.DataFrame(rows, schema_overrides={"n": pl.Int32, "train_examples": pl.Int32})
        outputs_frame = pl.DataFrame(generations, schema_overrides={"cache_key": pl.String})
        where = {"task": self.task, "method": METHOD}
        self.warehouse.replace_tables([("evaluations", where, frame), ("generations", where, outputs_frame)])
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
