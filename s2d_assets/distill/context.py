"""What every stage of the paper works with: the experiment, the state folder, tasks, methods, engines.

A ``StageContext`` is built once per process from an experiment already loaded (never re-read
from disk by a stage). Tasks and methods are built once and kept; engines load lazily on the
first cache miss. No Dagster here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import Experiment
from s2d_assets.core.base_models import BaseModel, local_model, provision_embedded
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.paths import StatePaths, resolve_path
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.distill.judging import engine_answerer
from s2d_assets.distill.teach import taught_model
from s2d_assets.engines import CachedEngine, Engine, GenerationCache, build_engine
from s2d_assets.methods import MethodDefinition, build_method
from s2d_assets.tasks import Task, build_task

EngineFactory = Callable[[Path, str, "Path | None"], Engine]


@dataclass
class StageContext:
    experiment: Experiment
    paths: StatePaths
    engine_factory: EngineFactory | None = None
    _tasks: dict[str, Task] = field(default_factory=dict, init=False, repr=False)
    _methods: dict[str, MethodDefinition] = field(default_factory=dict, init=False, repr=False)
    _base: BaseModel | None = field(default=None, init=False, repr=False)

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse, experiment=self.experiment.name)

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            task = build_task(self.experiment.tasks[name])
            if task.needs_base_model:  # e.g. judging pairs answered by the base model
                task = task.with_answerer(
                    lambda: engine_answerer(self.base_engine(f"{name}/pairs"), self.experiment.seed)
                )
            self._tasks[name] = task
        return self._tasks[name]

    def method(self, name: str) -> MethodDefinition:
        """The experiment's method ``name`` with its prompts and exemplars, built once."""
        if name not in self._methods:
            spec = self.experiment.methods[name]
            exemplars = resolve_path(spec.exemplars) if spec.exemplars else None
            method = build_method(spec.kind, spec.prompts, spec.max_new_tokens, exemplars)
            self._methods[name] = method.with_answer(spec.answer)
        return self._methods[name]

    # -- models and engines ---------------------------------------------------------------------
    def base_model(self) -> BaseModel:
        if self._base is None:
            spec = self.experiment.model
            if spec.source == "embedded":
                self._base = provision_embedded(self.paths.models)
            elif spec.source == "hf_id":  # loaded by the engine itself (vLLM); identified by its id
                hf_id = spec.hf_id or ""
                self._base = BaseModel(name=hf_id, path=Path(hf_id), fingerprint=content_hash({"hf_id": hf_id}))
            else:
                self._base = local_model(Path(spec.path or ""), self.paths.models)
            if spec.teach is not None:  # a taught System 2: the pipeline's base model is the taught one
                kinds = {task.kind for task in spec.teach.tasks.values()}
                self._base = taught_model(
                    self._base, spec.teach, self._own_prompts(kinds), self.paths.models / "taught"
                )
        return self._base

    def _own_prompts(self, kinds: set[str]) -> list[str]:
        """The input prompts of the experiment's tasks of these kinds (teaching inputs of a kind must avoid them).

        Only tasks of a teaching task's kind can share its prompts; building no others also keeps a task that
        needs the base model to build its inputs (judging) from asking for the model being built.
        """
        tasks = [name for name, task in self.experiment.tasks.items() if task.kind in kinds]
        return [item.prompt for name in tasks for item in self.task(name).build_inputs()]

    def cached_engine(self, model_dir: Path, fingerprint: str, adapter_dir: Path | None, label: str) -> CachedEngine:
        engine_spec = self.experiment.engine
        producer = f"{fingerprint}:{engine_spec.producer}"
        factory = self.engine_factory or (lambda d, f, a: build_engine(engine_spec, d, f, a))
        remote = None
        if engine_spec.executor == "ray":  # misses go to a Ray Data job; Ray is imported on the first miss
            from s2d_assets.engines.ray_executor import RayExecutor

            staging = str(self.paths.ray_staging)
            remote = RayExecutor(engine_spec, str(model_dir), adapter_dir, staging, self.engine_factory)
        return CachedEngine(
            model_fingerprint=producer,
            engine_factory=lambda: factory(model_dir, producer, adapter_dir),
            cache=GenerationCache(self.warehouse),
            batch_size=engine_spec.batch_size,
            description=label,
            remote=remote,
        )

    def base_engine(self, label: str) -> CachedEngine:
        base = self.base_model()
        return self.cached_engine(base.path, base.fingerprint, None, label)

    # -- warehouse reads -------------------------------------------------------------------------
    def inputs(self, task_name: str, split: str) -> list[dict[str, Any]]:
        frame = self.warehouse.query(
            "SELECT input_id, prompt, reference, meta FROM inputs WHERE experiment = ? AND task = ? AND split = ? "
            "ORDER BY input_id",
            [self.experiment.name, task_name, split],
        )
        return [{**row, "meta": json.loads(row["meta"] or "{}")} for row in frame.iter_rows(named=True)]
