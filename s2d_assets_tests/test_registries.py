"""Every extension point is a registry: a toy task, method, curation filter and engine, registered here
and nowhere in the package, run end to end (inputs, System 2 generation, curation, training, evaluation)
on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
import pytest
from pydantic import Field

from s2d_assets import distill
from s2d_assets.config.base import Strict
from s2d_assets.config.curation import CURATION_FILTERS, FilterTraits
from s2d_assets.config.engine import ENGINES, EngineSpecBase
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.config.methods import METHODS
from s2d_assets.config.tasks import TASKS
from s2d_assets.core.errors import UserError
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill import StageContext
from s2d_assets.distill.votes import KEPT, NO_ANSWER, CurationFilter
from s2d_assets.engines.base import Completion, GenerationRequest
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.methods import MethodDefinition, Step
from s2d_assets.tasks import Task, TaskInput, build_task
from s2d_assets.tasks.base import split_unique
from s2d_assets_tests.conftest import tiny_experiment_data

# -- a task: is a number even? -------------------------------------------------------------------


class ParitySpec(Strict):
    kind: Literal["toy_parity"]
    train_size: int = Field(ge=1)
    eval_size: int = Field(ge=1)


@dataclass(frozen=True)
class ParityTask(Task):
    spec: ParitySpec
    kind: str = "toy_parity"

    def build_inputs(self) -> list[TaskInput]:
        items = [(f"Is {n} even?", "yes" if n % 2 == 0 else "no", {"n": n}) for n in range(100)]
        return split_unique(self.kind, items, self.spec.train_size, self.spec.eval_size)

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        words = text.split()
        return words[0].lower() if words else None  # the tiny random model's first word

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer == reference


# -- a method: one step -----------------------------------------------------------------------------

TOY_METHOD = MethodDefinition(
    kind="toy_think",
    description="Think briefly, then answer",
    steps=(Step(name="respond", template="{question}\nThink briefly, then answer.", max_new_tokens=6),),
    answer_step="respond",
)

# -- a curation filter: sample 0's answer, whenever it parsed ----------------------------------------


class FirstParsed(CurationFilter):
    def decide(self, ctx: Any, task_name: str, method_name: str, spec: Any) -> pl.DataFrame:
        samples = ctx.warehouse.query(
            "SELECT input_id, answer, count(*) OVER (PARTITION BY input_id) AS n FROM generations "
            "WHERE task = ? AND method = ? AND system = 'system2' AND variant_id = 0 AND sample_idx = 0 "
            "ORDER BY input_id",
            [task_name, method_name],
        )
        kept = samples["answer"].is_not_null()
        return samples.select(
            "input_id",
            pl.col("answer").cast(pl.String),
            pl.lit("{}").alias("votes"),
            pl.col("n").cast(pl.Int32).alias("n_samples"),
            pl.when(kept).then(1.0).otherwise(0.0).alias("agreement"),
            kept.alias("kept"),
            pl.when(kept).then(pl.lit(KEPT)).otherwise(pl.lit(NO_ANSWER)).alias("reason"),
        )


# -- an engine: the tiny model through transformers, counting its calls ------------------------------


class CountingSpec(EngineSpecBase):
    kind: Literal["toy_counting"]
    batch_size: int = 16
    calls: ClassVar[list[int]] = []


class CountingEngine:
    def __init__(self, inner: TransformersEngine) -> None:
        self.inner = inner

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        CountingSpec.calls.append(len(requests))
        return self.inner.generate(requests)


def counting_engine(spec: CountingSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> Any:
    return CountingEngine(TransformersEngine.from_dir(model_dir, fingerprint, "float32", adapter_dir))


@pytest.fixture
def toys() -> Iterator[None]:
    """The four extensions, registered through the registries only, and removed afterwards."""
    TASKS.register(ParityTask, spec=ParitySpec)
    ENGINES.register(counting_engine, spec=CountingSpec)
    CURATION_FILTERS.register(FirstParsed(), kind="toy_first_parsed", traits=FilterTraits())
    METHODS.register(TOY_METHOD, kind=TOY_METHOD.kind)
    CountingSpec.calls.clear()
    try:
        yield
    finally:
        TASKS.unregister("toy_parity")
        ENGINES.unregister("toy_counting")
        CURATION_FILTERS.unregister("toy_first_parsed")
        METHODS.unregister(TOY_METHOD.kind)


def _toy_experiment(model_dir: Path) -> dict[str, Any]:
    return tiny_experiment_data(
        model_dir,
        name="toys",
        n_samples=2,
        engine={"kind": "toy_counting"},
        tasks={"parity": {"kind": "toy_parity", "train_size": 6, "eval_size": 4}},
        methods={"think": {"kind": "toy_think"}},
        curation={"filter": "toy_first_parsed"},
    )


@pytest.mark.timeout(300)
def test_a_toy_task_method_filter_and_engine_run_end_to_end(toys: None, tiny_model_dir: Path, tmp_path: Path) -> None:
    experiment = parse_experiment(_toy_experiment(tiny_model_dir))
    assert isinstance(experiment.tasks["parity"], ParitySpec)
    assert isinstance(experiment.engine, CountingSpec)
    assert experiment.engine.producer.startswith("toy_counting:")
    ctx = StageContext(experiment, StatePaths(tmp_path / "state"))
    assert isinstance(ctx.task("parity"), ParityTask)
    base = ctx.base_model()
    distill.write_inputs(ctx, "parity")
    distill.write_perturbed_inputs(ctx, "parity")
    distill.generate_system2(ctx, "parity", "think", base)
    assert CountingSpec.calls, "the registered engine generated"
    steps = ctx.warehouse.query("SELECT DISTINCT steps FROM generations WHERE system = 'system2'")["steps"]
    assert all('"respond"' in s for s in steps)  # the toy method's one step
    pool = distill.curate(ctx, "parity", "think")
    assert pool.metadata["filter"] == "toy_first_parsed"
    rows = ctx.warehouse.query("SELECT answer, kept, reason FROM curated_pool").to_dicts()
    assert len(rows) == 6 and {r["reason"] for r in rows} <= {KEPT, NO_ANSWER}
    assert pool.metadata["kept"] == sum(r["answer"] is not None for r in rows) > 0
    distill.build_distillation_set(ctx, "parity", "think")
    distill.train_checkpoint(ctx, "parity", "think", base, {})
    distill.generate_system1_baseline(ctx, "parity", base)
    checkpoint = (ctx.paths.checkpoint("toys", "parity", "think") / "current").resolve()
    distill.evaluate(ctx, "parity", "think", base, checkpoint)
    evaluations = ctx.warehouse.query("SELECT system, n FROM evaluations ORDER BY system").rows()
    assert evaluations == [("distilled", 4), ("system1", 4), ("system2", 4)]


def test_an_unregistered_kind_is_refused_at_load_and_a_kind_registers_once(toys: None, tiny_model_dir: Path) -> None:
    for field, value in (
        ("tasks", {"parity": {"kind": "toy_unknown", "train_size": 1, "eval_size": 1}}),
        ("methods", {"think": {"kind": "toy_unknown"}}),
        ("curation", {"filter": "toy_unknown"}),
        ("engine", {"kind": "toy_unknown"}),
    ):
        with pytest.raises(UserError, match=field):
            parse_experiment({**_toy_experiment(tiny_model_dir), field: value})
    with pytest.raises(ValueError, match="already registered"):
        TASKS.register(ParityTask, spec=ParitySpec)
    with pytest.raises(KeyError, match="toy_unknown"):
        build_task(ParitySpec.model_construct(kind="toy_unknown", train_size=1, eval_size=1))


def test_every_registered_kind_resolves_to_an_implementation_of_that_kind() -> None:
    for kind in TASKS:
        implementation = TASKS.implementation(kind)
        assert issubclass(implementation, Task) and implementation.kind == kind  # the class's own kind agrees
    for kind in CURATION_FILTERS:
        assert isinstance(CURATION_FILTERS.implementation(kind), CurationFilter)
        assert isinstance(CURATION_FILTERS.traits(kind), FilterTraits)
    for kind in ENGINES:
        assert callable(ENGINES.implementation(kind))  # a builder; importing it loads no engine library
    for kind in METHODS:
        method = METHODS.implementation(kind)
        assert isinstance(method, MethodDefinition) and method.kind == kind
    assert set(TASKS) >= {"coin_flip", "last_letter", "pairwise_judging"} and "usc" in CURATION_FILTERS
