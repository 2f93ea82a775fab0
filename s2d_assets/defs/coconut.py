"""Coconut assets: data → starting model → one checkpoint per curriculum stage, baselines → evaluation."""

from collections.abc import Callable
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    ResourceParam,
    asset,
)

from s2d_assets.coconut.stages import METHOD, CoconutPipeline, stage_name
from s2d_assets.core.stage_result import StageResult
from s2d_assets.defs.automation import eager_or_code_changed
from s2d_assets.defs.common import WRITER_POOL, experiment_key, to_materialization
from s2d_assets.defs.sources import COCONUT_GROUP, experiment_sources
from s2d_assets.defs.stage_assets import base_model_key
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.replicates import combined_version, run_replicates

GROUP = COCONUT_GROUP


def _pipeline(s2d: StageContext) -> CoconutPipeline:
    return CoconutPipeline(s2d.experiment, s2d.paths)


def _version(ctx: StageContext, version: Callable[[CoconutPipeline], str]) -> str:
    """A Coconut stage's code version over the experiment's seeds (each seed draws its own graphs)."""
    return combined_version(ctx, lambda replicate: version(_pipeline(replicate)))


def _each_seed(s2d: StageContext, run: Callable[[CoconutPipeline], StageResult]) -> MaterializeResult:
    """Run a Coconut stage once per seed (its own rows and checkpoints) and report them as one."""
    return to_materialization(run_replicates(s2d, lambda replicate: run(_pipeline(replicate))))


def _lineage(context: AssetExecutionContext, key: AssetKey) -> dict[str, Any]:
    return {"code_version": context.assets_def.code_versions_by_key[key], "run_id": context.run_id}


def coconut_assets(ctx: StageContext) -> list[AssetsDefinition]:
    coconut = _pipeline(ctx)
    spec, task = coconut.spec, coconut.task

    def key(name: str) -> AssetKey:
        return experiment_key(ctx.experiment.name, task, METHOD, name)

    data_key, init_key = key("raw_inputs"), key("init_model")
    uses_base = spec.model == "base"
    # The data reads the census names (defs/sources.py observes them, keyed beside raw_inputs).
    sources = [source_key for source_key, group, _ in experiment_sources(ctx) if group == GROUP]

    @asset(
        key=data_key,
        deps=sources,
        group_name=GROUP,
        automation_condition=eager_or_code_changed(),
        pool=WRITER_POOL,
        code_version=_version(ctx, CoconutPipeline.data_version),
        description=f"{task} records (question, steps, answer): a train split and a labelled eval split.",
    )
    def data(s2d: ResourceParam[StageContext]) -> MaterializeResult:
        return _each_seed(s2d, CoconutPipeline.write_data)

    @asset(
        key=init_key,
        deps=[data_key, *([base_model_key(ctx.experiment.name)] if uses_base else [])],
        group_name=GROUP,
        automation_condition=eager_or_code_changed(),
        code_version=_version(ctx, CoconutPipeline.init_version),
        description="The starting model with <bot>, <eot>, <latent>, <pause>: the base model, or a small Llama "
        "initialised at random with a word-level tokenizer over the data.",
    )
    def init_model(context: AssetExecutionContext, s2d: ResourceParam[StageContext]) -> MaterializeResult:
        base = s2d.base_model() if uses_base else None
        lineage = _lineage(context, init_key)
        return _each_seed(s2d, lambda pipeline: pipeline.init_model(base, lineage))

    assets = [data, init_model]
    previous = init_key
    for stage in range(spec.max_stage + 1):
        assets.append(_stage_asset(ctx, stage, key(stage_name(stage)), previous, data_key))
        previous = key(stage_name(stage))
    baseline_keys = [key(f"baseline_{system}") for system in spec.baselines]
    for system, baseline_key in zip(spec.baselines, baseline_keys, strict=True):
        assets.append(_baseline_asset(ctx, system, baseline_key, init_key, data_key))

    @asset(
        key=key("evaluation"),
        deps=[previous, *baseline_keys, data_key],
        group_name=GROUP,
        automation_condition=eager_or_code_changed(),
        pool=WRITER_POOL,
        code_version=_version(ctx, CoconutPipeline.evaluation_version),
        description=f"Greedy decoding on the eval split with {spec.n_thoughts} thoughts: accuracy and tokens per "
        "item for No-CoT, CoT, pause tokens and Coconut (rows in `evaluations`, method 'coconut').",
    )
    def evaluation(s2d: ResourceParam[StageContext]) -> MaterializeResult:
        return _each_seed(s2d, CoconutPipeline.evaluate)

    return [*assets, evaluation]


def _stage_asset(
    ctx: StageContext, stage: int, stage_key: AssetKey, previous: AssetKey, data_key: AssetKey
) -> AssetsDefinition:
    coconut = _pipeline(ctx)
    replaced = (
        "full chain of thought"
        if stage == 0
        else f"first {stage} step(s) as {stage * coconut.spec.thoughts_per_step} thought(s)"
    )

    @asset(
        key=stage_key,
        deps=[previous, data_key],
        group_name=GROUP,
        automation_condition=eager_or_code_changed(),
        code_version=_version(ctx, lambda pipeline: pipeline.stage_version(stage)),
        description=f"Curriculum stage {stage} ({replaced}), trained from {'/'.join(previous.path)} "
        "with a fresh optimizer.",
    )
    def _stage(context: AssetExecutionContext, s2d: ResourceParam[StageContext]) -> MaterializeResult:
        lineage = {**_lineage(context, stage_key), "previous_asset": "/".join(previous.path)}
        return _each_seed(s2d, lambda pipeline: pipeline.train_stage(stage, lineage))

    return _stage


def _baseline_asset(
    ctx: StageContext, system: str, baseline_key: AssetKey, init_key: AssetKey, data_key: AssetKey
) -> AssetsDefinition:
    coconut = _pipeline(ctx)

    @asset(
        key=baseline_key,
        deps=[init_key, data_key],
        group_name=GROUP,
        automation_condition=eager_or_code_changed(),
        code_version=_version(ctx, lambda pipeline: pipeline.baseline_version(system)),
        description=f"Baseline {system}, trained from the starting model for {coconut.spec.baseline_epochs:g} epochs "
        "(the whole curriculum's budget).",
    )
    def _baseline(context: AssetExecutionContext, s2d: ResourceParam[StageContext]) -> MaterializeResult:
        lineage = _lineage(context, baseline_key)
        return _each_seed(s2d, lambda pipeline: pipeline.train_baseline(system, lineage))

    return _baseline
