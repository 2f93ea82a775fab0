"""The experiment file: which tasks, methods, filters, training and engine to run.

Loaded from YAML into strict pydantic models, so a typo or a wrong type is refused at load
with the path of the offending field. Each stage takes its ``code_version`` from the
fingerprint of exactly the part of this spec that shapes its output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from s2d_assets.config.answers import ANSWER_HELP, answer_mode_problems
from s2d_assets.config.base import Strict
from s2d_assets.config.coconut import CoconutSpec
from s2d_assets.config.curation import CURATION_FILTERS, CurationSpec
from s2d_assets.config.engine import EngineSpec, TransformersEngineSpec
from s2d_assets.config.methods import METHODS
from s2d_assets.config.tasks import TaskSpec
from s2d_assets.config.training import TeachSpec, TrainingSpec
from s2d_assets.config.validation import (
    DEFAULT_LIMITS,
    NAME_PATTERN,
    NAME_RULE,
    cron_problem,
    limit_problems,
    load_yaml,
    read_utf8,
    yaml_error_line,
)
from s2d_assets.core.answer_set import FREE, AnswerMode
from s2d_assets.core.errors import UserError, one_line
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.paths import PROJECT_ROOT

DEFAULT_EXPERIMENT = PROJECT_ROOT / "experiments" / "default.yaml"


class ExperimentError(UserError):
    """A malformed experiment file; the message names the file and the field."""


class ModelSpec(Strict):
    """Where the base model comes from. ``embedded`` is SmolLM2-135M-Instruct from its package."""

    source: Literal["embedded", "path", "hf_id"] = "embedded"
    path: str | None = None
    hf_id: str | None = Field(None, description="a Hugging Face model id, loaded by the engine itself (vLLM)")
    teach: TeachSpec | None = Field(
        None,
        description="a taught System 2: fine-tune the base model on programmatic step-by-step traces of other "
        "inputs before the pipeline runs (not the paper's prompted setting); off when absent",
    )

    @model_validator(mode="after")
    def _path_given(self) -> ModelSpec:
        if self.source == "path" and not self.path:
            raise ValueError("model.path is required when model.source is 'path'")
        if self.source == "hf_id" and not self.hf_id:
            raise ValueError("model.hf_id is required when model.source is 'hf_id'")
        return self


class SamplingSpec(Strict):
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)


class MethodSpec(Strict):
    kind: str = Field(description="a method kind of the method registry (METHODS in s2d_assets/config/methods.py)")
    exemplars: str | None = Field(None, description="JSONL exemplar file (question, reasoning, answer) for few-shot")
    prompts: dict[str, str] = Field(default_factory=dict, description="step name -> template override")
    max_new_tokens: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="step name -> budget override"
    )
    curation: CurationSpec | None = None
    answer: AnswerMode = Field(
        FREE, exclude_if=lambda v: v == FREE, description=ANSWER_HELP + " (the method's answer step)"
    )


class EvaluationSpec(Strict):
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy decoding on the eval split")
    system1_answer: AnswerMode = Field(
        FREE,
        exclude_if=lambda v: v == FREE,
        description=ANSWER_HELP + " (the System 1 baseline and the distilled model, one System 1 prompt)",
    )


class ChecksSpec(Strict):
    """Asset-check thresholds; the pool checks block training when they fail."""

    min_pool_size: int = Field(1, ge=0, description="kept inputs needed before a checkpoint is trained")
    min_parse_rate: float = Field(0.2, ge=0.0, le=1.0, description="share of System 2 samples with a parsed answer")
    max_answer_share: float = Field(0.95, gt=0.0, le=1.0, description="warn when one answer holds more of the pool")
    max_eval_answer_share: float = Field(
        0.9, gt=0.0, le=1.0, description="warn when a system gives one answer to more of the eval items"
    )


class ScheduleSpec(Strict):
    refresh_cron: str = Field(
        "0 3 * * *",
        description="when the automation sensor observes the task files; generation re-runs at most once per period",
    )
    inbox_poll_seconds: int = Field(30, ge=5, description="how often the inbox sensor looks for new input files")

    @field_validator("refresh_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value!r} is not a cron string Dagster accepts: {problem}")
        return value


class LimitsSpec(Strict):
    """Raised upper bounds on sizes (the defaults are in ``validation.DEFAULT_LIMITS``)."""

    n_samples: int | None = Field(None, ge=1)
    train_size: int | None = Field(None, ge=1)
    eval_size: int | None = Field(None, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    max_length: int | None = Field(None, ge=1)


REPLICATE_SEPARATOR = ".seed"  # not part of any slug, so a replicate's name never collides with an experiment's


def replicate_name(name: str, seed: int, first_seed: int) -> str:
    """The experiment name a seed's rows carry: the name itself for ``first_seed``, else ``<name>.seed<seed>``."""
    return name if seed == first_seed else f"{name}{REPLICATE_SEPARATOR}{seed}"


def replicate_base(name: str) -> tuple[str, int | None]:
    """(experiment, seed) of a replicate's name; the seed is None for the experiment's own name."""
    base, separator, seed = name.rpartition(REPLICATE_SEPARATOR)
    if separator and base and seed.removeprefix("-").isdigit():
        return base, int(seed)
    return name, None


class Experiment(Strict):
    name: str = Field(description=f"a slug: {NAME_RULE}")
    seed: int = Field(0, description="sampling seed; task and training seeds are offset from it per replicate")
    seeds: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="replicates: each seed draws its own task inputs (train/eval split), samples and training "
        "order; results report mean and standard deviation over them. Default: [seed], one replicate",
    )
    n_samples: int = Field(8, ge=1, description="System 2 samples per input for self-consistency")
    model: ModelSpec = ModelSpec()
    engine: EngineSpec = TransformersEngineSpec()
    sampling: SamplingSpec = SamplingSpec()
    tasks: dict[str, TaskSpec]
    methods: dict[str, MethodSpec]
    curation: CurationSpec = CurationSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    checks: ChecksSpec = ChecksSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    coconut: CoconutSpec | None = Field(None, description="continuous-thought System 1 (Coconut); off when absent")
    limits: LimitsSpec = Field(LimitsSpec(), description=f"raise the size limits {DEFAULT_LIMITS} explicitly")

    @model_validator(mode="before")
    @classmethod
    def _seed_from_seeds(cls, data: Any) -> Any:
        # `seeds: [3, 4, 5]` alone makes 3 the experiment's own seed: its replicate keeps the plain name.
        if isinstance(data, dict) and data.get("seeds") and "seed" not in data and isinstance(data["seeds"], list):
            return {**data, "seed": data["seeds"][0]}
        return data

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"seeds {list(value)} repeat a seed")
        return value

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"name {value!r} is not a slug ({NAME_RULE})")
        return value

    @field_validator("tasks", "methods")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not NAME_PATTERN.match(key):
                raise ValueError(f"name {key!r} is not a slug ({NAME_RULE})")
        return value

    @model_validator(mode="after")
    def _sizes_within_limits(self) -> Experiment:
        problems = limit_problems(self.model_dump(mode="json"), self.limits.model_dump())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _something_to_run(self) -> Experiment:
        # A Coconut-only experiment may leave tasks and methods empty.
        if self.coconut is None:
            for field in ("tasks", "methods"):
                if not getattr(self, field):
                    raise ValueError(f"{field}: at least one entry is required (or a coconut section)")
        return self

    @model_validator(mode="after")
    def _method_kinds_are_registered(self) -> Experiment:
        for name, spec in self.methods.items():
            if spec.kind not in METHODS:
                raise ValueError(f"methods.{name}.kind: unknown method kind {spec.kind!r}; known: {sorted(METHODS)}")
        return self

    @model_validator(mode="after")
    def _method_overrides_name_real_steps(self) -> Experiment:
        for name, spec in self.methods.items():
            method = METHODS.implementation(spec.kind)
            steps = {step.name for step in method.prompt_steps}
            if "exemplars" in method.slots and not spec.exemplars:
                raise ValueError(f"methods.{name}.exemplars: {spec.kind} needs an exemplar file")
            for field in ("prompts", "max_new_tokens"):
                unknown = set(getattr(spec, field)) - steps
                if unknown:
                    raise ValueError(
                        f"methods.{name}.{field}: unknown step(s) {sorted(unknown)}; "
                        f"{spec.kind} has steps {sorted(steps)}"
                    )
            for step, template in spec.prompts.items():
                problems = method.template_problems(step, template)
                if problems:
                    raise ValueError(f"methods.{name}.prompts.{step}: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _engine_continues_assistant_turns(self) -> Experiment:
        """A method whose answer stage continues the assistant's turn needs an engine that can render it."""
        problem = self.engine.continuation_problem()
        for name, spec in self.methods.items():
            if problem and METHODS.implementation(spec.kind).needs_continuation:
                raise ValueError(
                    f"methods.{name}: {spec.kind} answers in the assistant's own turn, which engine kind "
                    f"{self.engine.kind!r} cannot continue here: {problem}"
                )
        return self

    @model_validator(mode="after")
    def _perturbation_filters_need_perturbations(self) -> Experiment:
        for name in self.methods:
            if not CURATION_FILTERS.traits(self.curation_for(name).filter).needs_variants:
                continue
            for task, spec in self.tasks.items():
                if not getattr(spec, "perturbations", ()):
                    raise ValueError(
                        f"methods.{name}: curation filter {self.curation_for(name).filter!r} needs perturbed "
                        f"variants, but tasks.{task} declares no perturbations"
                    )
        return self

    @model_validator(mode="after")
    def _constrained_answers_apply(self) -> Experiment:
        problems = answer_mode_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _engine_accepts_the_settings(self) -> Experiment:
        """Settings the chosen engine would reject at run time are refused at load (e.g. vLLM's bounds)."""
        temperatures = {
            "sampling.temperature": self.sampling.temperature,
            "evaluation.temperature": self.evaluation.temperature,
        }
        for name, task in self.tasks.items():
            for setting in ("setting_a", "setting_b"):
                if hasattr(task, setting):
                    temperatures[f"tasks.{name}.{setting}.temperature"] = getattr(task, setting).temperature
        lora_ranks = {"training.lora_r": self.training.lora_r} if self.training.mode == "lora" else {}
        self.engine.check_experiment(temperatures, lora_ranks)
        return self

    def curation_for(self, method: str) -> CurationSpec:
        return self.methods[method].curation or self.curation

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    def replicate(self, seed: int) -> Experiment:
        """The experiment as run with ``seed``: sampling seed ``seed``, every task seed and the training
        seed shifted by ``seed - self.seed`` (so the replicate of ``self.seed`` is the experiment itself),
        named ``replicate_name(...)``. A replicate has one seed; its Coconut section, if any, draws its
        graphs and trains with the same offset."""
        if seed == self.seed and self.seeds in (None, (seed,)):
            return self
        offset = seed - self.seed
        tasks = {name: task.model_copy(update={"seed": task.seed + offset}) for name, task in self.tasks.items()}
        return self.model_copy(
            update={
                "name": replicate_name(self.name, seed, self.seed),
                "seed": seed,
                "seeds": None,
                "tasks": tasks,
                "training": self.training.model_copy(update={"seed": self.training.seed + offset}),
                "coconut": None if self.coconut is None else self.coconut.shifted(offset),
            }
        )

    def replicates(self) -> list[Experiment]:
        """One experiment per seed of ``seed_list``, in that order."""
        return [self.replicate(seed) for seed in self.seed_list]

    @property
    def fingerprint(self) -> str:
        return content_hash(self.model_dump(mode="json"))


def _format_error(path: Path, error: ValidationError) -> str:
    """One line: the file, then each problem as ``field: message`` (a model check names its fields itself)."""
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{loc}: {message}" if loc else message)
    return one_line(f"{path}: invalid experiment file: " + "; ".join(problems))


def parse_experiment(data: Any, source: Path | str = "<experiment>") -> Experiment:
    path = Path(source)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: the experiment file must be a mapping, got {type(data).__name__}")
    try:
        return Experiment.model_validate(data)
    except ValidationError as error:
        raise ExperimentError(_format_error(path, error)) from None


def experiment_path(path: Path | str | None = None) -> Path:
    """The one rule for which experiment file applies: ``path``, else ``$S2D_EXPERIMENT``, else the default."""
    return Path(path or os.environ.get("S2D_EXPERIMENT") or DEFAULT_EXPERIMENT).resolve()


def load_experiment(path: Path | str | None = None) -> Experiment:
    """Load the experiment named by ``path``, ``$S2D_EXPERIMENT`` or the shipped default."""
    resolved = experiment_path(path)
    if not resolved.is_file():
        raise ExperimentError(f"{resolved}: experiment file not found")
    try:
        data = load_yaml(read_utf8(resolved))
    except UnicodeDecodeError as error:
        raise ExperimentError(
            f"{resolved}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from None
    except yaml.YAMLError as error:
        raise ExperimentError(f"{resolved}: not valid YAML: {yaml_error_line(error)}") from None
    return parse_experiment(data, resolved)
