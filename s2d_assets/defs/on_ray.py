"""Which assets run on Ray, and the ``ray`` resource that connects the run to the cluster (dagster-ray).

An experiment runs on Ray when ``engine.executor`` is ``ray`` (the stages that call the engine) or
``training.workers`` is above 1 (the stage whose ``runs_on_ray`` says so: training). Which stage does
what is read from the stage table (``stage_assets.Stage``). Only those assets require the ``ray``
resource, so Dagster connects to Ray for them alone. Everything else, and the default install
without the ray extra, never imports Ray or dagster-ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from s2d_assets.config.experiment import Experiment

RAY_RESOURCE = "ray"


def engine_on_ray(experiment: Experiment) -> bool:
    return experiment.engine.executor == "ray"


def training_on_ray(experiment: Experiment) -> bool:
    return experiment.training.workers > 1


def stage_runs_on_ray(
    runs_on_ray: Callable[[Experiment], bool] | None, calls_engine: bool, experiment: Experiment
) -> bool:
    """A stage's ``runs_on_ray`` rule when it has one; else where the engine runs, when the stage calls
    it (``calls_engine``: generations, USC pools, evaluation, judging inputs)."""
    if runs_on_ray is not None:
        return runs_on_ray(experiment)
    return calls_engine and engine_on_ray(experiment)


def ray_resource_keys(on_ray: bool) -> set[str]:
    return {RAY_RESOURCE} if on_ray else set()


def runs_on_ray(experiment: Experiment) -> bool:
    return engine_on_ray(experiment) or training_on_ray(experiment)


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
