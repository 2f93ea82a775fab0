"""The Dagster entry point: ``workspace.yaml`` loads this module; Dagster calls ``defs()`` lazily.

The experiment is loaded once per process (from ``--experiment`` through ``$S2D_EXPERIMENT``, else
the default file) and handed to every asset and check as one ``StageContext`` resource.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster import Definitions, in_process_executor

from s2d_assets.config.experiment import Experiment, experiment_path, load_experiment
from s2d_assets.core.paths import StatePaths, state_paths
from s2d_assets.defs.automation import MATERIALIZE_ALL, automation_sensor, inbox_sensor, jobs, observe_on_cron
from s2d_assets.defs.export import export_job
from s2d_assets.defs.on_ray import ray_resources
from s2d_assets.defs.resources import WarehouseResource
from s2d_assets.defs.sources import INBOX_SOURCE, source_assets
from s2d_assets.defs.sql_models import SQL_FOLDER, sql_model_assets
from s2d_assets.defs.stage_assets import base_model_asset, experiment_assets, experiment_checks
from s2d_assets.defs.tables import table_producers
from s2d_assets.distill.context import StageContext

__all__ = ["MATERIALIZE_ALL", "build_definitions", "defs", "load_definitions"]


def build_definitions(
    experiment: Experiment, experiment_path: Path, paths: StatePaths, sql_folder: Path = SQL_FOLDER
) -> Definitions:
    ctx = StageContext(experiment, paths)
    coconut = experiment.coconut
    # A Coconut-only experiment that trains a model from scratch has no use for the base model.
    needs_base = bool(experiment.tasks) or (coconut is not None and coconut.model == "base")
    assets = [base_model_asset(ctx)] if needs_base else []
    # Every file a task reads, observed on the refresh cron (and by `s2d run` / `s2d refresh`).
    observed = source_assets(ctx, observe_on_cron(experiment.schedule.refresh_cron))
    source_keys = [a.key for a in observed]
    inbox_keys = {key.path[-2]: key for key in source_keys if key.path[-1] == INBOX_SOURCE}
    assets += experiment_assets(ctx)
    checks = experiment_checks(ctx)
    if coconut is not None:
        from s2d_assets.defs.coconut import coconut_assets

        assets += coconut_assets(ctx)
    # SQL models over the warehouse tables: their upstream assets are the stages that write those tables.
    assets += sql_model_assets(experiment.name, sql_folder, table_producers(assets))
    return Definitions(
        assets=[*observed, *assets],
        asset_checks=checks,
        jobs=[*jobs(source_keys), export_job()],
        sensors=[automation_sensor(source_keys), inbox_sensor(experiment, paths, inbox_keys)],
        resources={"s2d": ctx, "warehouse": WarehouseResource(path=str(paths.warehouse)), **ray_resources(experiment)},
        # One process: on a small machine a fresh process per step would reload torch each time.
        executor=in_process_executor,
    )


def load_definitions(path: Path | str | None = None, paths: StatePaths | None = None) -> Definitions:
    resolved = experiment_path(path)
    return build_definitions(load_experiment(resolved), resolved, paths or state_paths())


@dg.definitions
def defs() -> Definitions:
    return load_definitions()
