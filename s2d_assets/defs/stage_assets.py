"""What Dagster sees of the paper: one table of stages, turned into assets by one helper.

Each ``Stage`` is the one place a stage's rules live: its asset (the last part of the key), its
upstream stages, the warehouse tables it writes (declared in the asset's metadata, which gives SQL
models their upstream assets), its code version, the plain-Python function (``s2d_assets.distill``)
that does the work, and how Dagster treats it: its automation condition, whether it reads its sources,
calls the engine or runs on Ray, which upstream code versions go into its model card, its asset checks,
what follows it and its group. Coconut's stages are a second table of ``Stage`` entries
(``defs/coconut.py``), turned into assets by the same ``stage_asset()``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from s2d_assets import distill
from s2d_assets.config.curation import CURATION_FILTERS
from s2d_assets.config.experiment import Experiment
from s2d_assets.core.checkpoints import CURRENT
from s2d_assets.core.progress import metering, reporting
from s2d_assets.core.stage_result import StageResult
from s2d_assets.defs.automation import base_model_condition, eager, on_refresh_cron
from s2d_assets.defs.checks import (
    ANSWER_COLLAPSE,
    ANSWER_DISTRIBUTION,
    NO_EVAL_LEAKAGE,
    PARSE_RATE,
    POOL_SIZE,
    Check,
    stage_check,
)
from s2d_assets.defs.common import TABLES_METADATA, WRITER_POOL, experiment_key, stage_key, to_materialization
from s2d_assets.defs.on_ray import ray_resource_keys, stage_runs_on_ray, training_on_ray
from s2d_assets.defs.sources import experiment_sources
from s2d_assets.distill import plan
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.replicates import combined_version, run_replicates
from s2d_assets.report.plots import plot_evaluation

BASE = "base_model"  # an upstream name meaning the base model asset
UPSTREAM_CODE_VERSIONS = "s2d/upstream_code_versions"  # metadata: the code versions of ``Stage.lineage``


def base_model_key(experiment: str) -> AssetKey:
    return experiment_key(experiment, BASE)


# (context, task, method) -> code version / whether the stage does something / the stage's result
Version = Callable[[StageContext, str, str], str]
When = Callable[[StageContext, str, str], bool]
Run = Callable[[AssetExecutionContext, StageContext, str, str], StageResult]
After = Callable[[StageContext, str, str, StageResult], None]  # after every seed ran, before materialising


def always(ctx: StageContext, task: str, method: str) -> bool:
    return True


def never(ctx: StageContext, task: str, method: str) -> bool:
    return False


@dataclass(frozen=True, kw_only=True)
class Stage:
    name: str
    per_method: bool  # keyed <task>/<method>/<name>, else <task>/<name>
    upstream: tuple[str, ...]  # upstream stages (``BASE``: the base model asset)
    tables: tuple[str, ...]  # the warehouse tables it writes
    version: Version
    run: Run
    description: str
    writes_warehouse: bool = True  # takes the warehouse writer pool
    # its automation condition: eager, or where the LLM cost is, on the refresh cron (defs/automation.py)
    automation: Callable[[Experiment], AutomationCondition] = eager
    reads_sources: bool = False  # reads the task's files (and inbox): depends on their source assets
    # generates through the engine (which needs the base model: then it depends on the base model asset)
    calls_engine: When = never
    # runs on Ray by its own rule (training workers); ``None``: where the engine runs, when it calls it
    runs_on_ray: Callable[[Experiment], bool] | None = None
    lineage: tuple[str, ...] = ()  # upstream stages whose code versions it records (the model card)
    card_metadata: tuple[str, ...] = ()  # its metadata an export's card copies (defs/lineage.py)
    checks: tuple[Check, ...] = ()  # asset checks on it (defs/checks.py)
    after: After | None = None  # runs on the result once every seed ran
    group: str = ""  # its asset group ("": the task)


def _needs_base_model(ctx: StageContext, task: str, method: str) -> bool:
    # Some tasks build their inputs with the base model (judging pairs answered under two settings).
    return ctx.task(task).needs_base_model


def _filter_calls_base_model(ctx: StageContext, task: str, method: str) -> bool:
    # e.g. universal self-consistency: the base model picks the consistent sample
    return CURATION_FILTERS.traits(ctx.experiment.curation_for(method).filter).calls_base_model


def card_lineage(context: AssetExecutionContext) -> dict[str, Any]:
    """Lineage for a model card: the code versions Dagster recorded for this asset and the stages it
    was built from (``Stage.lineage``), and the run."""
    key = context.asset_key
    upstream = context.assets_def.metadata_by_key[key].get(UPSTREAM_CODE_VERSIONS)
    return {
        "code_version": context.assets_def.code_versions_by_key[key],
        **{f"{name}_code_version": version for name, version in (upstream.value.items() if upstream else ())},
        "run_id": context.run_id,
    }


def _train(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
    return distill.train_checkpoint(ctx, task, method, ctx.base_model(), card_lineage(context))


def _evaluate(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
    checkpoint = (ctx.paths.checkpoint(ctx.experiment.name, task, method) / CURRENT).resolve()
    return distill.evaluate(ctx, task, method, ctx.base_model(), checkpoint)


STAGES: tuple[Stage, ...] = (
    Stage(
        name="raw_inputs",
        per_method=False,
        upstream=(),
        tables=("inputs",),
        version=lambda ctx, t, m: plan.inputs_version(ctx.experiment, t),
        run=lambda c, ctx, t, m: distill.write_inputs(ctx, t),
        description="Task inputs: a train split (used unlabelled) and a labelled eval split.",
        reads_sources=True,
        calls_engine=_needs_base_model,
    ),
    Stage(
        name="perturbed_inputs",
        per_method=False,
        upstream=("raw_inputs",),
        tables=("perturbed_inputs",),
        version=lambda ctx, t, m: plan.perturbation_version(ctx.experiment, t),
        run=lambda c, ctx, t, m: distill.write_perturbed_inputs(ctx, t),
        description="Train inputs and their perturbed variants, each with a map of answers back to the original.",
    ),
    Stage(
        name="s1_generations",
        per_method=False,
        upstream=(BASE, "raw_inputs"),
        tables=("generations", "answer_counts", "llm_cache", "generation_failures"),
        version=lambda ctx, t, m: plan.system1_version(ctx.experiment),
        run=lambda c, ctx, t, m: distill.generate_system1_baseline(ctx, t, ctx.base_model()),
        description="System 1 baseline: the base model's direct answers on the eval split.",
        automation=on_refresh_cron,
        calls_engine=always,
    ),
    Stage(
        name="s2_generations",
        per_method=True,
        upstream=(BASE, "perturbed_inputs"),
        tables=("generations", "answer_counts", "llm_cache", "generation_failures"),
        version=lambda ctx, t, m: plan.s2_generation_version(ctx.experiment, ctx.method(m)),
        run=lambda c, ctx, t, m: distill.generate_system2(ctx, t, m, ctx.base_model()),
        description="N sampled System 2 answers per train input (and variant), through the generation cache.",
        automation=on_refresh_cron,
        calls_engine=always,
        checks=(PARSE_RATE,),
    ),
    Stage(
        name="curated_pool",
        per_method=True,
        upstream=("s2_generations",),
        tables=("curated_pool",),
        version=lambda ctx, t, m: plan.pool_version(ctx.experiment, m),
        run=lambda c, ctx, t, m: distill.curate(ctx, t, m),
        description="Self-consistency filter: one row per input, kept or not, with votes, agreement and reason. The "
        "metadata adds the inputs kept on one parsed vote, the kept answers' balance and the pool's accuracy against "
        "the train references (labelled analysis only, computed after the pool is written, never used to select).",
        calls_engine=_filter_calls_base_model,
        card_metadata=("filter", "min_agreement", "threshold", "unparsed"),  # the curation filter
        checks=(ANSWER_DISTRIBUTION,),
    ),
    Stage(
        name="distillation_set",
        per_method=True,
        upstream=("curated_pool", "raw_inputs"),
        tables=("distillation_set",),
        version=lambda ctx, t, m: plan.DISTILLATION_SET_VERSION,
        run=lambda c, ctx, t, m: distill.build_distillation_set(ctx, t, m),
        description="Training pairs: the System 1 prompt -> the kept final answer, no intermediate tokens.",
        checks=(POOL_SIZE, NO_EVAL_LEAKAGE),
    ),
    Stage(
        name="s1_checkpoint",
        per_method=True,
        upstream=("distillation_set", BASE),
        tables=(),
        version=lambda ctx, t, m: plan.training_version(ctx.experiment),
        run=_train,
        description="The distilled System 1: the base model fine-tuned (TRL SFT) on the distillation set.",
        writes_warehouse=False,
        runs_on_ray=training_on_ray,
        lineage=("s2_generations", "curated_pool", "distillation_set"),
    ),
    Stage(
        name="evaluation",
        per_method=True,
        upstream=("s1_checkpoint", "s1_generations", BASE, "raw_inputs"),
        tables=("generations", "answer_counts", "evaluations", "evaluation_groups", "llm_cache", "generation_failures"),
        version=lambda ctx, t, m: plan.evaluation_version(ctx.experiment, ctx.method(m)),
        run=_evaluate,
        description="System 1 vs System 2 vs distilled System 1 on the eval split: accuracy and generated tokens.",
        calls_engine=always,
        checks=(ANSWER_COLLAPSE,),
        after=plot_evaluation,
    ),
)
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}


def source_keys(ctx: StageContext, key: AssetKey) -> list[AssetKey]:
    """The sources keyed beside ``key``: the files (and inbox) of its task, or Coconut's census names."""
    return [source for source, _, _ in experiment_sources(ctx) if source.path[:-1] == key.path[:-1]]


def stage_upstream(stage: Stage, ctx: StageContext, task: str, method: str) -> tuple[str, ...]:
    """The stage's upstream names: a stage that calls the engine also depends on the base model."""
    engine = stage.calls_engine(ctx, task, method) and BASE not in stage.upstream
    return (*stage.upstream, *((BASE,) if engine else ()))


def stage_version(stage: Stage, ctx: StageContext, task: str, method: str) -> str:
    """The stage's code version over every seed of the experiment (its own version for one seed)."""
    return combined_version(ctx, lambda replicate: stage.version(replicate, task, method))


def stage_asset(
    stage: Stage, ctx: StageContext, task: str, method: str = "", stages: Mapping[str, Stage] = STAGE_BY_NAME
) -> AssetsDefinition:
    """The one asset of ``stage`` for (task, method); its upstream names are stages of ``stages``."""

    experiment = ctx.experiment.name

    def upstream_key(name: str) -> AssetKey:
        if name == BASE:
            return base_model_key(experiment)
        return stage_key(experiment, task, method if stages[name].per_method else None, name)

    key = stage_key(experiment, task, method if stage.per_method else None, stage.name)
    label = f"{task}/{method}" if stage.per_method else task
    # The tables it writes (SQL models depend on it through them, defs/tables.py).
    metadata: dict[str, Any] = {TABLES_METADATA: MetadataValue.json(list(stage.tables))} if stage.tables else {}
    if stage.lineage:  # the code versions handed to Dagster for the stages it was built from
        metadata[UPSTREAM_CODE_VERSIONS] = MetadataValue.json(
            {name: stage_version(stages[name], ctx, task, method) for name in stage.lineage}
        )

    deps = [upstream_key(name) for name in stage_upstream(stage, ctx, task, method)]
    on_ray = stage_runs_on_ray(stage.runs_on_ray, stage.calls_engine(ctx, task, method), ctx.experiment)
    if stage.reads_sources:
        deps += source_keys(ctx, key)

    @asset(
        key=key,
        deps=deps,
        group_name=stage.group or task,
        pool=WRITER_POOL if stage.writes_warehouse else None,
        code_version=stage_version(stage, ctx, task, method),
        description=f"{stage.description} ({label})",
        metadata=metadata,
        automation_condition=stage.automation(ctx.experiment),
        # The `ray` resource (dagster-ray) connects the run to Ray, for the assets that run there only.
        required_resource_keys={"s2d", *ray_resource_keys(on_ray)},
    )
    def _stage(context: AssetExecutionContext) -> MaterializeResult:
        s2d: StageContext = context.resources.s2d
        # Progress goes to the run's log; wall time and generation-cache counts to the metadata.
        with reporting(context.log.info), metering() as meter:
            # Once per seed (replicate), one materialisation for all of them (distill/replicates.py).
            result = run_replicates(s2d, lambda replicate: stage.run(context, replicate, task, method))
        if stage.after is not None:
            stage.after(s2d, task, method, result)
        return to_materialization(result, meter.as_metadata())

    return _stage


def base_model_asset(ctx: StageContext) -> AssetsDefinition:
    @asset(
        key=base_model_key(ctx.experiment.name),
        group_name="models",
        code_version=plan.base_model_version(ctx.experiment),
        description="The base model as a Hugging Face directory (the embedded SmolLM2 comes from its package).",
        automation_condition=base_model_condition(),
    )
    def base_model(s2d: ResourceParam[StageContext]) -> MaterializeResult:
        model = s2d.base_model()
        return MaterializeResult(
            metadata={
                "name": model.name,
                "path": MetadataValue.path(str(model.path)),
                "fingerprint": model.fingerprint,
            },
            data_version=DataVersion(model.fingerprint),
        )

    return base_model


def experiment_assets(ctx: StageContext) -> list[AssetsDefinition]:
    """Every stage asset of the experiment: per task, then per (task, method)."""
    assets = []
    for task in ctx.experiment.tasks:
        assets += [stage_asset(s, ctx, task) for s in STAGES if not s.per_method]
        for method in ctx.experiment.methods:
            assets += [stage_asset(s, ctx, task, method) for s in STAGES if s.per_method]
    return assets


def experiment_checks(ctx: StageContext) -> list[AssetChecksDefinition]:
    """Every asset check of the experiment: the checks each stage declares, per (task, method)."""
    experiment = ctx.experiment
    return [
        stage_check(check, stage_key(experiment.name, task, method, stage.name), task, method, experiment.checks)
        for task in experiment.tasks
        for method in experiment.methods
        for stage in STAGES
        if stage.per_method
        for check in stage.checks
    ]
