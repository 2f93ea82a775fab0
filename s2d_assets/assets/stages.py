"""The stage assets, built from the experiment: per task, then per (task, method)."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from s2d_assets.assets.common import WRITER_POOL, method_key, task_key, to_materialization
from s2d_assets.fingerprint import content_hash
from s2d_assets.methods import SYSTEM1
from s2d_assets.report import accuracy_tokens_png, markdown_image
from s2d_assets.resources import PipelineResource
from s2d_assets.stages import Pipeline

BASE_MODEL = AssetKey("base_model")


def base_model_asset(pipeline: Pipeline) -> AssetsDefinition:
    @asset(
        key=BASE_MODEL,
        group_name="models",
        code_version=content_hash(pipeline.experiment.model.model_dump(mode="json")),
        description="The base model as a Hugging Face directory (the embedded SmolLM2 comes from its package).",
    )
    def base_model(s2d: PipelineResource) -> MaterializeResult:
        model = s2d.pipeline().base_model()
        return MaterializeResult(
            metadata={
                "name": model.name,
                "path": MetadataValue.path(str(model.path)),
                "fingerprint": model.fingerprint,
            },
            data_version=DataVersion(model.fingerprint),
        )

    return base_model


def task_assets(pipeline: Pipeline, task: str) -> list[AssetsDefinition]:
    raw, perturbed = task_key(task, "raw_inputs"), task_key(task, "perturbed_inputs")

    # Some tasks build their inputs with the base model (judging pairs answered under two settings).
    raw_deps = [BASE_MODEL] if getattr(pipeline.task(task), "needs_base_model", False) else []

    @asset(
        key=raw,
        deps=raw_deps,
        group_name=task,
        pool=WRITER_POOL,
        code_version=pipeline.inputs_version(task),
        description=f"Task inputs for {task}: a train split (used unlabelled) and a labelled eval split.",
    )
    def raw_inputs(s2d: PipelineResource) -> MaterializeResult:
        return to_materialization(s2d.pipeline().write_inputs(task))

    @asset(
        key=perturbed,
        deps=[raw],
        group_name=task,
        pool=WRITER_POOL,
        code_version=pipeline.perturbation_version(task),
        description="Train inputs and their perturbed variants, each with a map of answers back to the original.",
    )
    def perturbed_inputs(s2d: PipelineResource) -> MaterializeResult:
        return to_materialization(s2d.pipeline().write_perturbed_inputs(task))

    system1_version = pipeline.generation_version(SYSTEM1, pipeline.experiment.evaluation.temperature, 1)

    @asset(
        key=task_key(task, "s1_generations"),
        deps=[BASE_MODEL, raw],
        group_name=task,
        pool=WRITER_POOL,
        code_version=system1_version,
        description="System 1 baseline: the base model's direct answers on the eval split.",
    )
    def s1_generations(s2d: PipelineResource) -> MaterializeResult:
        p = s2d.pipeline()
        return to_materialization(p.generate_system1_baseline(task, p.base_model()))

    return [raw_inputs, perturbed_inputs, s1_generations]


def method_assets(pipeline: Pipeline, task: str, method: str) -> list[AssetsDefinition]:
    generations = method_key(task, method, "s2_generations")
    pool = method_key(task, method, "curated_pool")
    dataset = method_key(task, method, "distillation_set")
    checkpoint = method_key(task, method, "s1_checkpoint")
    kind = pipeline.experiment.methods[method].kind

    @asset(
        key=generations,
        deps=[BASE_MODEL, task_key(task, "perturbed_inputs")],
        group_name=task,
        pool=WRITER_POOL,
        code_version=pipeline.s2_generation_version(method),
        description=f"{kind}: N sampled System 2 answers per train input (and variant).",
    )
    def s2_generations(s2d: PipelineResource) -> MaterializeResult:
        p = s2d.pipeline()
        return to_materialization(p.generate_system2(task, method, p.base_model()))

    @asset(
        key=pool,
        deps=[generations, *([BASE_MODEL] if pipeline.experiment.curation_for(method).filter == "usc" else [])],
        group_name=task,
        pool=WRITER_POOL,
        code_version=pipeline.pool_version(method),
        description="Self-consistency filter: one row per input, kept or not, with votes, agreement and reason.",
    )
    def curated_pool(s2d: PipelineResource) -> MaterializeResult:
        return to_materialization(s2d.pipeline().curate(task, method))

    @asset(
        key=dataset,
        deps=[pool, task_key(task, "raw_inputs")],
        group_name=task,
        pool=WRITER_POOL,
        code_version="direct-answer-v1",
        description="Training pairs: the System 1 prompt -> the kept final answer, no intermediate tokens.",
    )
    def distillation_set(s2d: PipelineResource) -> MaterializeResult:
        return to_materialization(s2d.pipeline().build_distillation_set(task, method))

    @asset(
        key=checkpoint,
        deps=[dataset, BASE_MODEL],
        group_name=task,
        code_version=pipeline.training_version(),
        description="The distilled System 1: the base model fine-tuned (TRL SFT) on the distillation set.",
    )
    def s1_checkpoint(context: AssetExecutionContext, s2d: PipelineResource) -> MaterializeResult:
        p = s2d.pipeline()
        lineage = {
            "code_version": context.assets_def.code_versions_by_key[checkpoint],
            "generations_code_version": p.s2_generation_version(method),
            "pool_code_version": p.pool_version(method),
            "run_id": context.run_id,
        }
        return to_materialization(p.train_checkpoint(task, method, p.base_model(), lineage))

    @asset(
        key=method_key(task, method, "evaluation"),
        deps=[checkpoint, task_key(task, "s1_generations"), BASE_MODEL, task_key(task, "raw_inputs")],
        group_name=task,
        pool=WRITER_POOL,
        code_version=pipeline.evaluation_version(method),
        description="System 1 vs System 2 vs distilled System 1 on the eval split: accuracy and generated tokens.",
    )
    def evaluation(s2d: PipelineResource) -> MaterializeResult:
        p = s2d.pipeline()
        path = p.paths.checkpoints / p.experiment.name / task / method / "current"
        result = p.evaluate(task, method, p.base_model(), path.resolve())
        rows = p.warehouse.query(
            "SELECT system, accuracy, mean_tokens FROM evaluations WHERE task = ? AND method = ?", [task, method]
        ).to_dicts()
        png = accuracy_tokens_png(rows, f"{task} / {method}")
        result.markdown["accuracy_vs_tokens"] = markdown_image(png, "accuracy against generated tokens")
        return to_materialization(result)

    return [s2_generations, curated_pool, distillation_set, s1_checkpoint, evaluation]
