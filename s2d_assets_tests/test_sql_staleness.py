"""Editing one SQL model makes that model and its SQL dependents stale, and nothing else.

Read through a Dagster instance: the Python stages' materialisations are reported, the SQL
models are materialised for real over a small warehouse, then the definitions are rebuilt from
the edited SQL and the refresh plan (``defs/refresh.py``, Dagster's stale causes read from the
instance through the public API) is asked about every asset.
"""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, AssetMaterialization, DagsterInstance, DataVersion, Definitions

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.common import DATA_VERSION_TAG
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.defs.refresh import MISSING, DependencyGraph, plan_refresh
from s2d_assets.defs.sql_models import SQL_GROUP
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.test_sql_shipped_models import fixture_warehouse

MODELS = {
    "kept.sql": "SELECT * FROM curated_pool WHERE kept",
    "reports/kept_per_task.sql": "SELECT task, count(*) AS n FROM main.kept GROUP BY task",
    "reports/pool_sizes.sql": "SELECT task, count(*) AS n FROM curated_pool GROUP BY task",
    "reports/kept_share.sql": (
        "-- materialized: table\n"
        "SELECT k.task, k.n / p.n AS share FROM kept_per_task AS k JOIN reports.pool_sizes AS p USING (task)"
    ),
    "reports/accuracy.sql": "SELECT task, method, system, accuracy FROM evaluations",
}


class Project:
    def __init__(self, root: Path, instance: DagsterInstance) -> None:
        self.root, self.instance = root, instance
        self.sql = root / "sql"
        for relative, sql in MODELS.items():
            self.write(relative, sql)
        self.paths = StatePaths(root / "state")
        fixture_warehouse(self.paths.warehouse)

    def write(self, relative: str, sql: str) -> None:
        path = self.sql / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)

    def defs(self) -> Definitions:
        path = self.root / "e.yaml"
        experiment = parse_experiment(tiny_experiment_data(self.root), path)
        return build_definitions(experiment, path, self.paths, sql_folder=self.sql)

    def sql_keys(self) -> list[AssetKey]:
        return [spec.key for spec in self.defs().resolve_all_asset_specs() if spec.group_name == SQL_GROUP]

    def report_python_stages(self) -> None:
        """Record the Python stages as materialised (upstream first) without running a model."""
        graph = DependencyGraph.of(self.defs())
        for key in graph.toposorted():
            if key not in graph.sources and key not in self.sql_keys():
                self.instance.report_runless_asset_event(
                    AssetMaterialization(key, tags={DATA_VERSION_TAG: DataVersion("v1").value})
                )

    def materialize(self, keys: list[AssetKey]) -> None:
        job = self.defs().resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=self.instance, asset_selection=keys).success

    def status(self) -> dict[str, list[str]]:
        """Why each stale or missing asset is so (fresh assets are not listed)."""
        plan = plan_refresh(self.instance, self.defs())
        return {"/".join(key.path[1:]): why for key, why in plan.reasons.items()}

    def stale(self) -> set[str]:
        return set(self.status())


def test_editing_one_model_makes_only_it_and_its_sql_dependents_stale(tmp_path: Path) -> None:
    with DagsterInstance.ephemeral() as instance:
        project = Project(tmp_path, instance)
        project.report_python_stages()
        assert {"main/kept", "reports/kept_share", "reports/accuracy"} <= project.stale()  # never materialised
        project.materialize(project.sql_keys())
        assert project.stale() == set()

        # Layout and comments are not code: nothing moves.
        project.write("kept.sql", "-- the kept inputs\nselect *\n  from curated_pool\n where kept;\n")
        assert project.stale() == set()

        project.write("kept.sql", "SELECT * FROM curated_pool WHERE kept AND agreement >= 0.75")
        status = project.status()
        assert set(status) == {"main/kept", "reports/kept_per_task", "reports/kept_share"}
        assert all(why != [MISSING] and why[0].startswith("code version changed") for why in status.values())

        project.materialize([AssetKey(["tiny", *key.split("/")]) for key in sorted(project.stale())])
        assert project.stale() == set()

        # A leaf model's edit touches that model only.
        project.write("reports/accuracy.sql", "SELECT task, method, system, accuracy, n FROM evaluations")
        assert project.stale() == {"reports/accuracy"}
