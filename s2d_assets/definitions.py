"""The Dagster entry point (workspace.yaml loads ``defs`` from here)."""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, in_process_executor

from s2d_assets.assets.sql_models import SQL_FOLDER, sql_model_assets
from s2d_assets.assets.stages import base_model_asset, method_assets, task_assets
from s2d_assets.assets.tables import table_producers
from s2d_assets.automation import MATERIALIZE_ALL, inbox_sensor, jobs, refresh_schedule
from s2d_assets.checks import pool_checks
from s2d_assets.experiment import DEFAULT_EXPERIMENT, Experiment, load_experiment
from s2d_assets.resources import PipelineResource, WarehouseResource
from s2d_assets.stages import Pipeline
from s2d_assets.state import StatePaths, state_paths

__all__ = ["MATERIALIZE_ALL", "build_definitions", "defs", "load_definitions"]


def build_definitions(
    experiment: Experiment, experiment_path: Path, paths: StatePaths, sql_folder: Path = SQL_FOLDER
) -> Definitions:
    pipeline = Pipeline(experiment, paths)
    coconut = experiment.coconut
    # A Coconut-only experiment that trains a model from scratch has no use for the base model.
    needs_base = bool(experiment.tasks) or (coconut is not None and coconut.model == "base")
    assets = [base_model_asset(pipeline)] if needs_base else []
    checks = []
    for task in experiment.tasks:
        assets += task_assets(pipeline, task)
        for method in experiment.methods:
            assets += method_assets(pipeline, task, method)
            checks += pool_checks(task, method, experiment.checks)
    if coconut is not None:
        from s2d_assets.assets.coconut import coconut_assets

        assets += coconut_assets(experiment, paths)
    # SQL models over the warehouse tables: their upstream assets are the stages that write those tables.
    assets += sql_model_assets(sql_folder, table_producers(key for a in assets for key in a.keys))
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs(),
        schedules=[refresh_schedule(experiment)],
        sensors=[inbox_sensor(experiment, paths)],
        resources={
            "s2d": PipelineResource(experiment_path=str(experiment_path), state_dir=str(paths.root)),
            "warehouse": WarehouseResource(path=str(paths.warehouse)),
        },
        # One process: on a small machine a fresh process per step would reload torch each time.
        executor=in_process_executor,
    )


def load_definitions(experiment_path: Path | str | None = None, paths: StatePaths | None = None) -> Definitions:
    import os

    resolved = Path(experiment_path or os.environ.get("S2D_EXPERIMENT") or DEFAULT_EXPERIMENT).resolve()
    return build_definitions(load_experiment(resolved), resolved, paths or state_paths())


defs = load_definitions()
