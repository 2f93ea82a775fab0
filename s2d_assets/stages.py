"""The pipeline's stages as plain functions over the warehouse (no Dagster here).

Each stage reads its upstream tables, calls the science (tasks, methods, curation,
training), replaces its own rows in one transaction and returns a ``StageResult`` whose
``data_version`` hashes what it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from s2d_assets.base_models import BaseModel, local_model, provision_embedded
from s2d_assets.curation import Decision, curate_input, usc_decision
from s2d_assets.engines import CachedEngine, Engine, GenerationCache, build_engine
from s2d_assets.evaluation import SYSTEM1_BASELINE, EvaluationStages
from s2d_assets.experiment import Experiment
from s2d_assets.fingerprint import content_hash, rows_hash
from s2d_assets.inbox import inbox_files, read_inbox_file
from s2d_assets.methods import SYSTEM1, MethodDefinition, build_method, direct_prompt
from s2d_assets.methods.runner import Chain, ChainResult, run_method
from s2d_assets.methods.usc import USC_TEMPLATE, select_most_consistent
from s2d_assets.stage_result import StageResult, markdown_table
from s2d_assets.state import StatePaths
from s2d_assets.tasks import TRAIN, Task, build_task
from s2d_assets.tasks.base import prompt_meta
from s2d_assets.tasks.judging import engine_answerer
from s2d_assets.tasks.user_files import resolve_path
from s2d_assets.training.checkpoints import publish_checkpoint, read_manifest
from s2d_assets.training.sft import train_sft
from s2d_assets.warehouse import Warehouse

EngineFactory = Callable[[Path, str, "Path | None"], Engine]


@dataclass
class Pipeline(EvaluationStages):
    experiment: Experiment
    paths: StatePaths
    engine_factory: EngineFactory | None = None

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse)

    def task(self, name: str) -> Task:
        task = build_task(self.experiment.tasks[name])
        if getattr(task, "needs_base_model", False):  # e.g. judging pairs answered by the base model
            task = task.with_answerer(  # type: ignore[attr-defined]
                lambda: engine_answerer(self._base_engine(f"{name}/pairs"), self.experiment.seed)
            )
        return task

    def method(self, name: str) -> MethodDefinition:
        spec = self.experiment.methods[name]
        exemplars = resolve_path(spec.exemplars) if spec.exemplars else None
        return build_method(spec.kind, spec.prompts, spec.max_new_tokens, exemplars)

    # -- fingerprints that become Dagster code versions -------------------------------------
    def inputs_version(self, task: str) -> str:
        return content_hash(self.experiment.tasks[task].model_dump(mode="json"))

    def generation_version(self, method: MethodDefinition, temperature: float, n_samples: int) -> str:
        engine = self.experiment.engine.version_data()  # batching and concurrency do not change the text
        return content_hash(
            {
                "method": method.fingerprint,
                "t": temperature,
                "top_p": self.experiment.sampling.top_p,
                "n": n_samples,
                "seed": self.experiment.seed,
                "engine": engine,
            }
        )

    def s2_generation_version(self, method: str) -> str:
        return self.generation_version(
            self.method(method), self.experiment.sampling.temperature, self.experiment.n_samples
        )

    def perturbation_version(self, task: str) -> str:
        perturbations = list(getattr(self.experiment.tasks[task], "perturbations", ()))
        return content_hash({"perturbations": perturbations}) if perturbations else "identity-v1"

    def pool_version(self, method: str) -> str:
        spec = self.experiment.curation_for(method)
        if spec.filter == "usc":
            return content_hash([spec.model_dump(mode="json"), USC_TEMPLATE])
        return content_hash(spec.model_dump(mode="json"))

    def training_version(self) -> str:
        return content_hash(self.experiment.training.model_dump(mode="json"))

    def evaluation_version(self, method: str) -> str:
        return content_hash(
            [
                self.generation_version(self.method(method), self.experiment.evaluation.temperature, 1),
                self.generation_version(SYSTEM1, self.experiment.evaluation.temperature, 1),
            ]
        )

    # -- models and engines --------------------------------------------------------------------
    def base_model(self) -> BaseModel:
        spec = self.experiment.model
        if spec.source == "embedded":
            return provision_embedded(self.paths.models)
        if spec.source == "hf_id":  # loaded by the engine itself (vLLM); identified by its id
            hf_id = spec.hf_id or ""
            return BaseModel(name=hf_id, path=Path(hf_id), fingerprint=content_hash({"hf_id": hf_id}))
        return local_model(Path(spec.path or ""))

    def _cached_engine(self, model_dir: Path, fingerprint: str, adapter_dir: Path | None, label: str) -> CachedEngine:
        engine_spec = self.experiment.engine
        producer = f"{fingerprint}:{engine_spec.producer}"
        factory = self.engine_factory or (lambda d, f, a: build_engine(engine_spec, d, f, a))
        return CachedEngine(
            model_fingerprint=producer,
            engine_factory=lambda: factory(model_dir, producer, adapter_dir),
            cache=GenerationCache(self.warehouse),
            batch_size=engine_spec.batch_size,
            description=label,
        )

    # -- stages -----------------------------------------------------------------------------------
    def inbox(self, task_name: str) -> Path:
        return self.paths.inbox / task_name

    def write_inputs(self, task_name: str) -> StageResult:
        task = self.task(task_name)
        generated = task.build_inputs()
        # Inbox files are validated whole before anything is written (an InboxError names file and row).
        arrived = [
            item
            for path in inbox_files(self.inbox(task_name))
            for item in read_inbox_file(path, task.kind, partial(prompt_meta, task))
        ]
        seen: set[str] = set()
        inputs = []
        for item in generated + arrived:
            if item.input_id not in seen:
                seen.add(item.input_id)
                inputs.append(item)
        frame = pl.DataFrame(
            {
                "task": [task_name] * len(inputs),
                "split": [i.split for i in inputs],
                "input_id": [i.input_id for i in inputs],
                "prompt": [i.prompt for i in inputs],
                "reference": [i.reference for i in inputs],
                "meta": [json.dumps(i.meta) for i in inputs],
            }
        )
        self.warehouse.replace_rows("inputs", {"task": task_name}, frame)
        counts = frame.group_by("split").len().sort("split")
        return StageResult(
            data_version=rows_hash(frame.sort("input_id").rows()),
            metadata={"rows": frame.height, "inbox_rows": len(arrived), **{f"{s}_rows": n for s, n in counts.rows()}},
            markdown={"preview": markdown_table(frame.select("split", "input_id", "prompt", "reference").head(5))},
        )

    def write_perturbed_inputs(self, task_name: str) -> StageResult:
        """Variant 0 is the input itself; the task's declared perturbations add variants with answer maps."""
        task = self.task(task_name)
        perturb = getattr(task, "perturb", None)
        rows = []
        for item in self._inputs(task_name, TRAIN):
            rows.append((item["input_id"], 0, item["prompt"], "{}"))
            for number, variant in enumerate(perturb(item["prompt"], item["meta"]) if perturb else [], start=1):
                rows.append((item["input_id"], number, variant.prompt, json.dumps(variant.answer_map, sort_keys=True)))
        frame = (
            pl.DataFrame(
                rows,
                schema={"input_id": pl.String, "variant_id": pl.Int32, "prompt": pl.String, "answer_map": pl.String},
                orient="row",
            )
            .with_columns(pl.lit(task_name).alias("task"))
            .select("task", "input_id", "variant_id", "prompt", "answer_map")
        )
        self.warehouse.replace_rows("perturbed_inputs", {"task": task_name}, frame)
        inputs = frame.filter(pl.col("variant_id") == 0).height
        return StageResult(
            data_version=rows_hash(frame.select("input_id", "variant_id", "prompt", "answer_map").rows()),
            metadata={"rows": frame.height, "variants_per_input": round(frame.height / max(inputs, 1), 3)},
        )

    def _inputs(self, task_name: str, split: str) -> list[dict[str, Any]]:
        frame = self.warehouse.query(
            "SELECT input_id, prompt, reference, meta FROM inputs WHERE task = ? AND split = ? ORDER BY input_id",
            [task_name, split],
        )
        return [{**row, "meta": json.loads(row["meta"] or "{}")} for row in frame.iter_rows(named=True)]

    def _store_generations(
        self,
        task_name: str,
        method: str,
        system: str,
        split: str,
        results: list[ChainResult],
        answers: list[str | None],
    ) -> pl.DataFrame:
        frame = pl.DataFrame(
            {
                "task": task_name,
                "method": method,
                "system": system,
                "split": split,
                "input_id": [r.chain.input_id for r in results],
                "variant_id": [r.chain.variant_id for r in results],
                "sample_idx": [r.chain.sample_idx for r in results],
                "steps": [json.dumps(r.steps) for r in results],
                "output": [r.output for r in results],
                "answer": answers,
                "prompt_tokens": [r.prompt_tokens for r in results],
                "completion_tokens": [r.completion_tokens for r in results],
                "seconds": [r.seconds for r in results],
                "cache_key": [r.cache_key for r in results],
            },
            schema_overrides={"answer": pl.String},
        )
        where = {"task": task_name, "method": method, "system": system, "split": split}
        self.warehouse.replace_rows("generations", where, frame)
        return frame

    def generate_system2(self, task_name: str, method_name: str, base: BaseModel) -> StageResult:
        task, method = self.task(task_name), self.method(method_name)
        variants = self.warehouse.query(
            "SELECT p.input_id, p.variant_id, p.prompt, i.meta FROM perturbed_inputs p "
            "JOIN inputs i USING (task, input_id) WHERE p.task = ? ORDER BY p.input_id, p.variant_id",
            [task_name],
        )
        metas = {
            (row["input_id"], row["variant_id"]): _variant_meta(task, row["prompt"], row["meta"], row["variant_id"])
            for row in variants.iter_rows(named=True)
        }
        chains = [
            Chain(row["input_id"], row["prompt"], row["variant_id"], sample)
            for row in variants.iter_rows(named=True)
            for sample in range(self.experiment.n_samples)
        ]
        engine = self._cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}")
        sampling = self.experiment.sampling
        results = run_method(
            method, chains, engine, sampling.temperature, sampling.top_p, self.experiment.seed, engine.model_fingerprint
        )
        answers = [task.parse_answer(r.output, metas[(r.chain.input_id, r.chain.variant_id)]) for r in results]
        frame = self._store_generations(task_name, method_name, "system2", TRAIN, results, answers)
        parsed = sum(a is not None for a in answers)
        return StageResult(
            data_version=rows_hash(
                frame.select("input_id", "variant_id", "sample_idx", "output")
                .sort("input_id", "variant_id", "sample_idx")
                .rows()
            ),
            metadata={
                "rows": frame.height,
                "parse_rate": round(parsed / max(len(answers), 1), 4),
                "mean_completion_tokens": round(float(frame["completion_tokens"].mean() or 0.0), 2),
                **engine.stats.as_metadata(),
            },
            markdown={"preview": markdown_table(frame.select("input_id", "sample_idx", "answer", "output").head(5))},
        )

    def curate(self, task_name: str, method_name: str) -> StageResult:
        spec = self.experiment.curation_for(method_name)
        samples = self.warehouse.query(
            "SELECT input_id, variant_id, answer FROM generations WHERE task = ? AND method = ? "
            "AND system = 'system2' AND split = ? ORDER BY input_id, variant_id, sample_idx",
            [task_name, method_name, TRAIN],
        )
        maps = self.warehouse.query(
            "SELECT input_id, variant_id, answer_map FROM perturbed_inputs WHERE task = ?", [task_name]
        )
        answer_maps: dict[str, dict[int, dict[str, str]]] = {}
        for row in maps.iter_rows(named=True):
            answer_maps.setdefault(row["input_id"], {})[row["variant_id"]] = json.loads(row["answer_map"] or "{}")
        usc = self._usc_decisions(task_name, method_name) if spec.filter == "usc" else {}
        rows = []
        for (input_id,), group in samples.group_by(["input_id"], maintain_order=True):
            decision = usc.get(input_id) or curate_input(
                spec.filter,
                list(zip(group["variant_id"].to_list(), group["answer"].to_list(), strict=True)),
                answer_maps.get(input_id, {}),
                spec.min_agreement,
            )
            rows.append(
                {
                    "task": task_name,
                    "method": method_name,
                    "input_id": input_id,
                    "answer": decision.answer,
                    "votes": json.dumps(decision.votes, sort_keys=True),
                    "n_samples": decision.n_samples,
                    "agreement": decision.agreement,
                    "kept": decision.kept,
                    "reason": decision.reason,
                }
            )
        frame = pl.DataFrame(rows, schema_overrides={"answer": pl.String, "n_samples": pl.Int32})
        self.warehouse.replace_rows("curated_pool", {"task": task_name, "method": method_name}, frame)
        kept = int(frame["kept"].sum()) if frame.height else 0
        reasons = frame.group_by("reason").len().sort("reason") if frame.height else pl.DataFrame()
        return StageResult(
            data_version=rows_hash(
                frame.select("input_id", "answer", "kept").sort("input_id").rows() if frame.height else []
            ),
            metadata={
                "inputs": frame.height,
                "kept": kept,
                "keep_rate": round(kept / max(frame.height, 1), 4),
                "mean_agreement": round(float(frame["agreement"].mean() or 0.0), 4) if frame.height else 0.0,
            },
            markdown={"reasons": markdown_table(reasons) if frame.height else "(empty)"},
        )

    def _base_engine(self, label: str) -> CachedEngine:
        base = self.base_model()
        return self._cached_engine(base.path, base.fingerprint, None, label)

    def _usc_decisions(self, task_name: str, method_name: str) -> dict[str, Decision]:
        """Universal self-consistency: the base model picks the most consistent of each input's samples."""
        rows = self.warehouse.query(
            "SELECT g.input_id, i.prompt, g.output, g.answer FROM generations g JOIN inputs i USING (task, input_id) "
            "WHERE g.task = ? AND g.method = ? AND g.system = 'system2' AND g.split = ? AND g.variant_id = 0 "
            "ORDER BY g.input_id, g.sample_idx",
            [task_name, method_name, TRAIN],
        )
        grouped: dict[str, tuple[str, list[str], list[str | None]]] = {}
        for row in rows.iter_rows(named=True):
            _, outputs, answers = grouped.setdefault(row["input_id"], (row["prompt"], [], []))
            outputs.append(row["output"] or "")
            answers.append(row["answer"])
        engine = self._base_engine(f"{task_name}/{method_name}/usc")
        selections = select_most_consistent(
            engine, [(q, outs) for q, outs, _ in grouped.values()], self.experiment.seed
        )
        return {
            input_id: usc_decision(selection, answers)
            for (input_id, (_, _, answers)), selection in zip(grouped.items(), selections, strict=True)
        }

    def build_distillation_set(self, task_name: str, method_name: str) -> StageResult:
        pool = self.warehouse.query(
            "SELECT c.input_id, i.prompt AS question, c.answer "
            "FROM curated_pool c JOIN inputs i USING (task, input_id) "
            "WHERE c.task = ? AND c.method = ? AND c.kept ORDER BY c.input_id",
            [task_name, method_name],
        )
        frame = pl.DataFrame(
            {
                "task": task_name,
                "method": method_name,
                "input_id": pool["input_id"],
                "prompt": [direct_prompt(q) for q in pool["question"]],
                "completion": pool["answer"],
            },
            schema={
                "task": pl.String,
                "method": pl.String,
                "input_id": pl.String,
                "prompt": pl.String,
                "completion": pl.String,
            },
        )
        self.warehouse.replace_rows("distillation_set", {"task": task_name, "method": method_name}, frame)
        return StageResult(
            data_version=rows_hash(frame.select("input_id", "prompt", "completion").rows()),
            metadata={"examples": frame.height},
            markdown={"preview": markdown_table(frame.select("prompt", "completion").head(5))},
        )

    def train_checkpoint(
        self, task_name: str, method_name: str, base: BaseModel, lineage: dict[str, Any]
    ) -> StageResult:
        examples = self.warehouse.query(
            "SELECT prompt, completion FROM distillation_set WHERE task = ? AND method = ? ORDER BY input_id",
            [task_name, method_name],
        ).rows()
        spec = self.experiment.training
        version = content_hash(
            {"base": base.fingerprint, "data": rows_hash(examples), "training": spec.model_dump(mode="json")}
        )
        root = self.paths.checkpoints / self.experiment.name / task_name / method_name
        metrics: dict[str, float] = {}

        # An empty pool distils nothing: the "checkpoint" is the base model itself, recorded as such.
        mode = spec.mode if examples else "none"

        def train(staging: Path) -> None:
            if examples:
                metrics.update(train_sft(base.path, [tuple(e) for e in examples], spec, staging))

        card = {
            "experiment": self.experiment.name,
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


def _variant_meta(task: Task, prompt: str, meta: str | None, variant_id: int) -> dict[str, Any]:
    """A perturbed variant is parsed with what its own prompt says (e.g. its swapped option texts)."""
    base = json.loads(meta or "{}")
    describe = getattr(task, "meta_for_prompt", None)
    return {**base, **describe(prompt)} if variant_id and describe else base


__all__ = ["SYSTEM1_BASELINE", "EngineFactory", "Pipeline", "StageResult"]
