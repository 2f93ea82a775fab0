"""Which assets run on Ray, and the ``ray`` resource that connects the run to the cluster (dagster-ray).

An experiment runs on Ray when ``engine.executor`` is ``ray`` (the stages that call the engine) or
``training.workers`` is above 1 (the checkpoint stage). Only those assets require the ``ray``
resource, so Dagster connects to Ray for them alone. Everything else, and the default install
without the ray extra, never imports Ray or dagster-ray.
"""

from __future__ import annotations

from typing import Any

from s2d_assets.config.experiment import Experiment

RAY_RESOURCE = "ray"
BASE = "base_model"  # the upstream name of the base model asset (stage_assets.BASE)
TRAINING_STAGE = "s1_checkpoint"


def stage_runs_on_ray(stage: str, upstream: tuple[str, ...], experiment: Experiment) -> bool:
    if stage == TRAINING_STAGE:
        return experiment.training.workers > 1
    # A stage that calls the engine depends on the base model (generations, USC pools, evaluation, judging inputs).
    return experiment.engine.executor == "ray" and BASE in upstream


def ray_resource_keys(stage: str, upstream: tuple[str, ...], experiment: Experiment) -> set[str]:
    return {RAY_RESOURCE} if stage_runs_on_ray(stage, upstream, experiment) else set()


def runs_on_ray(experiment: Experiment) -> bool:
    return experiment.engine.executor == "ray" or experiment.training.workers > 1


def ray_resources(experiment: Experiment) -> dict[str, Any]:
    """``{"ray": resource}`` for an experiment that runs on Ray, else nothing.

    A local cluster by default (dagster-ray's ``LocalRay``, ``ray.init(num_cpus=...)``); the cluster at
    ``engine.ray.address`` when one is named. On Kubernetes, dagster-ray's ``KubeRayCluster`` or
    ``KubeRayInteractiveJob`` can take this key instead (docs/scaling.md).
    """
    if not runs_on_ray(experiment):
        return {}
    from s2d_assets.engines.ray_executor import RAY_EXTRA
    from s2d_assets.engines.ray_processors import RayUnavailable

    try:
        from s2d_assets.defs.ray_resources import local_or_address
    except ImportError:
        raise RayUnavailable(
            f"engine.executor: ray / training.workers > 1 need the ray extra (Ray Data, dagster-ray): {RAY_EXTRA}"
        ) from None
    return {RAY_RESOURCE: local_or_address(experiment.engine.ray)}
