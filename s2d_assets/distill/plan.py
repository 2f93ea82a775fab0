"""The code versions of the paper's stages: a fingerprint of exactly what shapes each output.

Computed once per process from the loaded experiment; Dagster records them as each asset's
``code_version``, so a change makes exactly the affected assets stale.
"""

from __future__ import annotations

from s2d_assets.config.curation import CURATION_FILTERS
from s2d_assets.config.experiment import Experiment
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.methods import SYSTEM1, MethodDefinition


def base_model_version(experiment: Experiment) -> str:
    return content_hash(experiment.model.model_dump(mode="json"))


def inputs_version(experiment: Experiment, task: str) -> str:
    return content_hash(experiment.tasks[task].model_dump(mode="json"))


def perturbation_version(experiment: Experiment, task: str) -> str:
    perturbations = list(getattr(experiment.tasks[task], "perturbations", ()))
    return content_hash({"perturbations": perturbations}) if perturbations else "identity-v1"


def generation_version(experiment: Experiment, method: MethodDefinition, temperature: float, n_samples: int) -> str:
    engine = experiment.engine.version_data()  # batching and concurrency do not change the text
    return content_hash(
        {
            "method": method.fingerprint,
            "t": temperature,
            "top_p": experiment.sampling.top_p,
            "n": n_samples,
            "seed": experiment.seed,
            "engine": engine,
        }
    )


def s2_generation_version(experiment: Experiment, method: MethodDefinition) -> str:
    return generation_version(experiment, method, experiment.sampling.temperature, experiment.n_samples)


def system1_version(experiment: Experiment) -> str:
    return generation_version(experiment, system1(experiment), experiment.evaluation.temperature, 1)


def system1(experiment: Experiment) -> MethodDefinition:
    """System 1 as the experiment evaluates it (its answer mode is part of its fingerprint)."""
    return SYSTEM1.with_answer(experiment.evaluation.system1_answer)


def pool_version(experiment: Experiment, method: str) -> str:
    spec = experiment.curation_for(method)
    version = CURATION_FILTERS.implementation(spec.filter).version  # e.g. the prompt a filter sends
    if version is not None:
        return content_hash([spec.model_dump(mode="json"), version])
    return content_hash(spec.model_dump(mode="json"))


DISTILLATION_SET_VERSION = "direct-answer-v2"  # v2: the judge instruction for pairwise judging


def training_version(experiment: Experiment) -> str:
    return content_hash(experiment.training.model_dump(mode="json"))


def evaluation_version(experiment: Experiment, method: MethodDefinition) -> str:
    temperature = experiment.evaluation.temperature
    return content_hash(
        [
            generation_version(experiment, method, temperature, 1),
            generation_version(experiment, system1(experiment), temperature, 1),
        ]
    )
