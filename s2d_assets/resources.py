"""Dagster resources: the experiment-bound pipeline (engines, state folder) and the warehouse."""

from pathlib import Path

from dagster import ConfigurableResource

from s2d_assets.experiment import load_experiment
from s2d_assets.stages import Pipeline
from s2d_assets.state import StatePaths
from s2d_assets.warehouse import Warehouse


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file; connections are opened per write, never held."""

    path: str

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path))


class PipelineResource(ConfigurableResource):
    """The experiment file and state folder every stage works in; engines load lazily on a cache miss."""

    experiment_path: str
    state_dir: str

    def pipeline(self) -> Pipeline:
        return Pipeline(load_experiment(self.experiment_path), StatePaths(Path(self.state_dir)))
