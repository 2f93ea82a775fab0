"""What Dagster sees of the paper: one table of stages, turned into assets by one helper.

Each ``Stage`` names its asset (the last part of the key), its upstream stages, the warehouse
tables it writes (which gives SQL models their upstream assets), its code version and the
plain-Python function (``s2d_assets.distill``) that does the work.
"""

from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
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
from s2d_assets.core.progress import metering, reporting
from s2d_assets.core.stage_result import StageResult
from s2d_assets.defs.automation import base_model_condition, eager_or_code_changed, missing_or_on_cron_when_changed
from s2d_assets.defs.common import WRITER_POOL, experiment_key, stage_key, to_materialization
from s2d_assets.defs.on_ray import ray_resource_keys
from s2d_assets.defs.sources import source_key
from s2d_assets.distill import plan
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.replicates import combined_version, replicate_names, run_replicates
from s2d_assets.distill.report import accuracy_tokens_png, markdown_image
from s2d_assets.tasks.sources import all_sources

BASE = "base_model"  # an upstream name meaning the base model asset


def base_model_key(experiment: str) -> AssetKey:
    return experiment_key(experiment, BASE)


# (context, task, method) -> code version / upstream names / the stage's result
Version = Callable[[StageContext, str, str], str]
Upstream = Callable[[StageContext, str, str], tuple[str, ...]]
Run = Callable[[AssetExecutionContext, StageContext, str, str], StageResult]


@dataclass(frozen=True)
class Stage:
    name: str
    per_method: bool  # keyed <task>/<method>/<name>, else <task>/<name>
    upstream: Upstream
    tables: tuple[str, ...]
    version: Version
    run: Run
    description: str
    writes_warehouse: bool = True


def _fixed(*names: str) -> Upstream:
    return lambda ctx, task, method: names


def _raw_upstream(ctx: StageContext, task: str, method: str) -> tuple[str, ...]:
    # Some tasks build their inputs with the base model (judging pairs answered under two settings).
    return (BASE,) if getattr(ctx.task(task), "needs_base_model", False) else ()


def _pool_upstream(ctx: StageContext, task: str, method: str) -> tuple[str, ...]:
    usc = ctx.experiment.curation_for(method).filter == "usc"  # the base model picks the consistent sample
    return ("s2_generations", *((BASE,) if usc else ()))


LINEAGE = ("s2_generations", "curated_pool", "distillation_set")  # upstream stages named in a model card


def _train(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
    """Lineage in the model card: the code versions Dagster recorded for this asset and its upstream stages."""
    lineage = {
        "code_version": context.assets_def.code_versions_by_key[context.asset_key],
        **{
            f"{name}_code_version": version
            for name, version in context.assets_def.metadata_by_key[context.asset_key][
                "s2d/upstream_code_versions"
            ].value.items()
        },
        "run_id": context.run_id,
    }
    return distill.train_checkpoint(ctx, task, method, ctx.base_model(), lineage)


def _evaluate(context: AssetExecutionContext, ctx: StageContext, task: str, method: str) -> StageResult:
    checkpoint = (ctx.paths.checkpoint(ctx.experiment.name, task, method) / "current").resolve()
    return distill.evaluate(ctx, task, method, ctx.base_model(), checkpoint)


def _plot_evaluation(ctx: StageContext, task: str, method: str, result: StageResult) -> None:
    """Accuracy against tokens, with error bars over the seeds when there are several."""
    names = replicate_names(ctx)
    rows = ctx.warehouse.query(
        "SELECT experiment, system, accuracy, mean_tokens FROM evaluations "
        "WHERE list_contains(?, experiment) AND task = ? AND method = ?",
        [names, task, method],
    ).to_dicts()
    png = accuracy_tokens_png(rows, f"{task} / {method}" + (f" ({len(names)} seeds)" if len(names) > 1 else ""))
    result.markdown["accuracy_vs_tokens"] = markdown_image(png, "accuracy against generated tokens")


STAGES: tuple[Stage, ...] = (
    Stage(
        "raw_inputs",
        False,
        _raw_upstream,
        ("inputs",),
        lambda ctx, t, m: plan.inputs_version(ctx.experiment, t),
        lambda c, ctx, t, m: distill.write_inputs(ctx, t),
        "Task inputs: a train split (used unlabelled) and a labelled eval split.",
    ),
    Stage(
        "perturbed_inputs",
        False,
        _fixed("raw_inputs"),
        ("perturbed_inputs",),
        lambda ctx, t, m: plan.perturbation_version(ctx.experiment, t),
        lambda c, ctx, t, m: distill.write_perturbed_inputs(ctx, t),
        "Train inputs and their perturbed variants, each with a map of answers back to the original.",
    ),
    Stage(
        "s1_generations",
        False,
        _fixed(BASE, "raw_inputs"),
        ("generations", "answer_counts", "llm_cache", "generation_failures"),
        lambda ctx, t, m: plan.system1_version(ctx.experiment),
        lambda c, ctx, t, m: distill.generate_system1_baseline(ctx, t, ctx.base_model()),
        "System 1 baseline: the base model's direct answers on the eval split.",
    ),
    Stage(
        "s2_generations",
        True,
        _fixed(BASE, "perturbed_inputs"),
        ("generations", "answer_counts", "llm_cache", "generation_failures"),
        lambda ctx, t, m: plan.s2_generation_version(ctx.experiment, ctx.method(m)),
        lambda c, ctx, t, m: distill.generate_system2(ctx, t, m, ctx.base_model()),
        "N sampled System 2 answers per train input (and variant), through the generation cache.",
    ),
    Stage(
        "curated_pool",
        True,
        _pool_upstream,
        ("curated_pool",),
        lambda ctx, t, m: plan.pool_version(ctx.experiment, m),
        lambda c, ctx, t, m: distill.curate(ctx, t, m),
        "Self-consistency filter: one row per input, kept or not, with votes, agreement and reason. The metadata "
        "adds the inputs kept on one parsed vote, the kept answers' balance and the pool's accuracy against the "
        "train references (labelled analysis only, computed after the pool is written, never used to select).",
    ),
    Stage(
        "distillation_set",
        True,
        _fixed("curated_pool", "raw_inputs"),
        ("distillation_set",),
        lambda ctx, t, m: plan.DISTILLATION_SET_VERSION,
        lambda c, ctx, t, m: distill.build_distillation_set(ctx, t, m),
        "Training pairs: the System 1 prompt -> the kept final answer, no intermediate tokens.",
    ),
    Stage(
        "s1_checkpoint",
        True,
        _fixed("distillation_set", BASE),
        (),
        lambda ctx, t, m: plan.training_version(ctx.experiment),
        _train,
        "The distilled System 1: the base model fine-tuned (TRL SFT) on the distillation set.",
        writes_warehouse=False,
    ),
    Stage(
        "evaluation",
        True,
        _fixed("s1_checkpoint", "s1_generations", BASE, "raw_inputs"),
        ("generations", "answer_counts", "evaluations", "evaluation_groups", "llm_cache", "generation_failures"),
        lambda ctx, t, m: plan.evaluation_version(ctx.experiment, ctx.method(m)),
        _evaluate,
        "System 1 vs System 2 vs distilled System 1 on the eval split: accuracy and generated tokens.",
    ),
)
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}
# Where the LLM cost is: materialised when missing, else at most once per refresh-cron period.
GENERATION_STAGES = frozenset({"s1_generations", "s2_generations"})
# Reads the task's files (and its inbox): depends on their source assets (defs/sources.py).
SOURCE_READERS = frozenset({"raw_inputs"})


def stage_condition(stage: Stage, ctx: StageContext) -> AutomationCondition:
    if stage.name in GENERATION_STAGES:
        return missing_or_on_cron_when_changed(ctx.experiment.schedule.refresh_cron)
    return eager_or_code_changed()


def source_keys(ctx: StageContext, task: str) -> list[AssetKey]:
    spec = ctx.experiment.tasks[task]
    return [source_key(ctx.experiment.name, task, s.name) for s in all_sources(spec, ctx.paths.inbox, task)]


def stage_version(stage: Stage, ctx: StageContext, task: str, method: str) -> str:
    """The stage's code version over every seed of the experiment (its own version for one seed)."""
    return combined_version(ctx, lambda replicate: stage.version(replicate, task, method))


def stage_asset(stage: Stage, ctx: StageContext, task: str, method: str = "") -> AssetsDefinition:
    """The one asset of ``stage`` for (task, method)."""

    experiment = ctx.experiment.name

    def upstream_key(name: str) -> AssetKey:
        if name == BASE:
            return base_model_key(experiment)
        return stage_key(experiment, task, method if STAGE_BY_NAME[name].per_method else None, name)

    key = stage_key(experiment, task, method if stage.per_method else None, stage.name)
    label = f"{task}/{method}" if stage.per_method else task
    metadata = {}
    if stage.name == "s1_checkpoint":  # the code versions handed to Dagster for the stages it was built from
        metadata["s2d/upstream_code_versions"] = MetadataValue.json(
            {name: stage_version(STAGE_BY_NAME[name], ctx, task, method) for name in LINEAGE}
        )

    upstream = stage.upstream(ctx, task, method)
    deps = [upstream_key(name) for name in upstream]
    if stage.name in SOURCE_READERS:
        deps += source_keys(ctx, task)

    @asset(
        key=key,
        deps=deps,
        group_name=task,
        pool=WRITER_POOL if stage.writes_warehouse else None,
        code_version=stage_version(stage, ctx, task, method),
        description=f"{stage.description} ({label})",
        metadata=metadata,
        automation_condition=stage_condition(stage, ctx),
        # The `ray` resource (dagster-ray) connects the run to Ray, for the assets that run there only.
        required_resource_keys={"s2d", *ray_resource_keys(stage.name, upstream, ctx.experiment)},
    )
    def _stage(context: AssetExecutionContext) -> MaterializeResult:
        s2d: StageContext = context.resources.s2d
        # Progress goes to the run's log; wall time and generation-cache counts to the metadata.
        with reporting(context.log.info), metering() as meter:
            # Once per seed (replicate), one materialisation for all of them (distill/replicates.py).
            result = run_replicates(s2d, lambda replicate: stage.run(context, replicate, task, method))
        if stage.name == "evaluation":
            _plot_evaluation(s2d, task, method, result)
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
