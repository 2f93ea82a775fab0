"""Building definitions over one state folder and reading what Dagster recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.automation import MATERIALIZE_ALL, REFRESH
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.defs.refresh import DependencyGraph, RefreshPlan, observe_sources, plan_refresh
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

    def observe(self) -> None:
        """Observe every source (what `s2d refresh` does first)."""
        observe_sources(self.defs(), self.instance)

    def plan(self) -> RefreshPlan:
        return plan_refresh(self.instance, self.defs())

    def stale(self) -> set[str]:
        return {short(key) for key in self.plan().reasons}

    def reasons(self) -> dict[str, list[str]]:
        return {short(key): why for key, why in self.plan().reasons.items()}

    def closure(self) -> list[AssetKey]:
        return self.plan().closure

    def run(self, selection: list[AssetKey] | None = None) -> bool:
        """Materialise ``selection`` (the refresh job), or everything with its sources observed first (`s2d run`)."""
        defs = self.defs()
        job = defs.resolve_job_def(REFRESH if selection is not None else MATERIALIZE_ALL)
        result = job.execute_in_process(instance=self.instance, asset_selection=selection, raise_on_error=False)
        self.last_result = result
        return result.success

    def materialization_counts(self) -> dict[str, int]:
        return {
            short(key): len(self.instance.fetch_materializations(key, limit=1000).records)
            for key in DependencyGraph.of(self.defs()).materializable
        }

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse, experiment=self.data["name"])

    def cache_size(self) -> int:
        return self.warehouse.count("llm_cache")
