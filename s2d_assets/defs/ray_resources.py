"""dagster-ray resources for the ``ray`` resource key (imported only when the ray extra is installed)."""

from __future__ import annotations

from typing import Any

from dagster_ray import LocalRay, RayResource

from s2d_assets.config.engine import RayExecutorSpec


class LocalRayCluster(LocalRay):
    """dagster-ray's ``LocalRay`` (``ray.init`` in the run's process, shut down after the run).

    A process already connected to Ray (a notebook, a test session) keeps its connection: the run
    uses that cluster and leaves it running.
    """

    def connect(self, context: Any) -> Any:
        import ray

        if ray.is_initialized():
            context.log.info("Ray is already initialised in this process: the run uses that cluster")
            return None
        return super().connect(context)


class RayClusterAt(RayResource):
    """A running Ray cluster by address (``auto`` inside the cluster, ``ray://head:10001`` from outside).

    Created and deleted elsewhere (``ray up``, a KubeRay ``RayCluster``); the run connects and disconnects.
    """

    address: str

    @property
    def host(self) -> str:
        return self.address.split("://")[-1].split(":")[0]

    @property
    def ray_address(self) -> str:  # type: ignore[override]
        return self.address

    @property
    def name(self) -> str:
        return f"Ray cluster at {self.address}"

    @property
    def created(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        return True


def local_or_address(spec: RayExecutorSpec) -> RayResource:
    if spec.address:
        return RayClusterAt(address=spec.address)
    options: dict[str, Any] = {"include_dashboard": False}
    if spec.num_cpus is not None:
        options["num_cpus"] = spec.num_cpus
    return LocalRayCluster(ray_init_options=options)
