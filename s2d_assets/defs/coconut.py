"""Coconut's stage table: data → starting model → one checkpoint per curriculum stage, baselines → evaluation.

The same ``Stage`` entries as the distillation pipeline's (``stage_assets.py``), in a second table built
for the experiment's ``coconut`` section (its curriculum stages and baselines) and turned into assets by
the same ``stage_asset()``: keys ``<task>/coconut/<stage>``, group ``coconut``. The stage functions
live in ``coconut/stages.py``.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition

from s2d_assets.coconut import stages as coconut
from s2d_assets.coconut.stages import METHOD, coconut_spec, stage_name
from s2d_assets.config.coconut import CoconutSpec
from s2d_assets.core.stage_result import StageResult
from s2d_assets.defs.sources import COCONUT_GROUP
from s2d_assets.defs.stage_assets import BASE, Stage, card_lineage, stage_asset
from s2d_assets.distill.context import StageContext

DATA, INIT_MODEL = "raw_inputs", "init_model"


def _coconut_stage(name: str, **fields: Any) -> Stage:
    return Stage(name=name, **{"per_method": True, "group": COCONUT_GROUP, "writes_warehouse": False, **fields})


def _init_model(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
    # the experiment's base model, for every seed alike (a scratch model needs none)
    base = context.resources.s2d.base_model() if coconut_spec(ctx).model == "base" else None
    return coconut.init_model(ctx, base, card_lineage(context))


def _curriculum_stage(stage: int, spec: CoconutSpec) -> Stage:
    previous = INIT_MODEL if stage == 0 else stage_name(stage - 1)
    replaced = (
        "full chain of thought"
        if stage == 0
        else f"first {stage} step(s) as {stage * spec.thoughts_per_step} thought(s)"
    )

    def run(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
        previous_asset = "/".join([*context.asset_key.path[:-1], previous])
        return coconut.train_stage(ctx, stage, {**card_lineage(context), "previous_asset": previous_asset})

    return _coconut_stage(
        stage_name(stage),
        upstream=(previous, DATA),
        tables=(),
        version=lambda ctx, t, m: coconut.stage_version(coconut_spec(ctx), stage),
        run=run,
        description=f"Curriculum stage {stage} ({replaced}), trained from {previous} with a fresh optimizer.",
    )


def _baseline(system: str, spec: CoconutSpec) -> Stage:
    return _coconut_stage(
        f"baseline_{system}",
        upstream=(INIT_MODEL, DATA),
        tables=(),
        version=lambda ctx, t, m: coconut.baseline_version(coconut_spec(ctx), system),
        run=lambda c, ctx, t, m: coconut.train_baseline(ctx, system, card_lineage(c)),
        description=f"Baseline {system}, trained from the starting model for {spec.baseline_epochs:g} epochs "
        "(the whole curriculum's budget).",
    )


def coconut_stages(spec: CoconutSpec) -> tuple[Stage, ...]:
    """The Coconut stages of ``spec``: data, starting model, stages 0..K, the baselines, the evaluation."""
    last = stage_name(spec.max_stage)
    data = _coconut_stage(
        DATA,
        upstream=(),
        tables=("inputs",),
        version=lambda ctx, t, m: coconut.data_version(coconut_spec(ctx)),
        run=lambda c, ctx, t, m: coconut.write_data(ctx),
        description="Records (question, steps, answer): a train split and a labelled eval split.",
        writes_warehouse=True,
        reads_sources=True,  # the census names (defs/sources.py observes them, keyed beside raw_inputs)
    )
    init = _coconut_stage(
        INIT_MODEL,
        upstream=(DATA, *((BASE,) if spec.model == "base" else ())),
        tables=(),
        version=lambda ctx, t, m: coconut.init_version(coconut_spec(ctx)),
        run=_init_model,
        description="The starting model with <bot>, <eot>, <latent>, <pause>: the base model, or a small Llama "
        "initialised at random with a word-level tokenizer over the data.",
    )
    evaluation = _coconut_stage(
        "evaluation",
        upstream=(last, *(f"baseline_{system}" for system in spec.baselines), DATA),
        tables=("generations", "answer_counts", "evaluations", "evaluation_groups"),
        version=lambda ctx, t, m: coconut.evaluation_version(coconut_spec(ctx)),
        run=lambda c, ctx, t, m: coconut.evaluate(ctx),
        description=f"Greedy decoding on the eval split with {spec.n_thoughts} thoughts: accuracy and tokens per "
        "item for No-CoT, CoT, pause tokens and Coconut (rows in `evaluations`, method 'coconut').",
        writes_warehouse=True,
    )
    return (
        data,
        init,
        *(_curriculum_stage(stage, spec) for stage in range(spec.max_stage + 1)),
        *(_baseline(system, spec) for system in spec.baselines),
        evaluation,
    )


def coconut_assets(ctx: StageContext) -> list[AssetsDefinition]:
    """Every Coconut asset of the experiment, from its stage table."""
    spec = coconut_spec(ctx)
    stages = coconut_stages(spec)
    table = {stage.name: stage for stage in stages}
    return [stage_asset(stage, ctx, spec.task_name, METHOD, table) for stage in stages]
