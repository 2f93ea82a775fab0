"""Building definitions over one state folder and reading what Dagster recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.automation import REFRESH
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.defs.refresh import stale_closure, stale_or_missing, stale_reasons
from s2d_assets_tests.conftest import write_experiment


def short(key: AssetKey) -> str:
    """An asset key without its experiment prefix, e.g. ``coin_flip/raw_inputs``."""
    return "/".join(key.path[1:])


class Project:
    """An experiment file that tests edit, one state folder and one Dagster instance."""

    def __init__(self, root: Path, data: dict[str, Any], instance: DagsterInstance) -> None:
        self.root = root
        self.data = data
        self.instance = instance
        self.paths = StatePaths(root / "state")
        self.experiment_path = root / "experiment.yaml"

    def defs(self) -> Definitions:
        write_experiment(self.experiment_path, self.data)
        return build_definitions(parse_experiment(self.data, self.experiment_path), self.experiment_path, self.paths)

    def stale(self) -> set[str]:
        graph = self.defs().resolve_asset_graph()
        return {short(key) for key in stale_or_missing(self.instance, graph)}

    def reasons(self) -> dict[str, list[str]]:
        graph = self.defs().resolve_asset_graph()
        return {short(key): why for key, why in stale_reasons(self.instance, graph).items()}

    def closure(self) -> list[AssetKey]:
        return stale_closure(self.instance, self.defs().resolve_asset_graph())

    def run(self, selection: list[AssetKey] | None = None) -> bool:
        defs = self.defs()
        job = defs.resolve_job_def(REFRESH)
        result = job.execute_in_process(instance=self.instance, asset_selection=selection, raise_on_error=False)
        self.last_result = result
        return result.success

    def materialization_counts(self) -> dict[str, int]:
        return {
            short(key): len(self.instance.fetch_materializations(key, limit=1000).records)
            for key in self.defs().resolve_asset_graph().materializable_asset_keys
        }

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse, experiment=self.data["name"])

    def cache_size(self) -> int:
        return self.warehouse.count("llm_cache")
