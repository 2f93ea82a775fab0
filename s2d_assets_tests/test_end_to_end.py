"""One materialisation of the whole graph with the tiny model, through Dagster, asset checks included."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterInstance

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.definitions import MATERIALIZE_ALL, build_definitions
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment


def test_materialize_whole_graph(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The random model's pools may be empty; the checks still run, and an empty pool trains nothing.
    data = tiny_experiment_data(tiny_model_dir, checks={"min_pool_size": 0})
    path = write_experiment(tmp_path / "tiny.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    assets = list(defs.resolve_asset_graph().get_all_asset_keys())
    assert AssetKey(["tiny", "coin_flip", "rar_2step", "evaluation"]) in assets
    with DagsterInstance.ephemeral() as instance:
        # The job `s2d run` launches: every asset and every asset check.
        result = defs.resolve_job_def(MATERIALIZE_ALL).execute_in_process(instance=instance)
        assert result.success
    evaluations_by_check = {
        (e.asset_key.path[1], e.asset_key.path[2], e.check_name): e for e in result.get_asset_check_evaluations()
    }
    names = {"pool_size", "no_eval_leakage", "parse_rate", "answer_distribution"}
    assert set(evaluations_by_check) >= {
        (task, method, name) for task in data["tasks"] for method in data["methods"] for name in names
    }
    for (_, _, name), evaluation in evaluations_by_check.items():
        if name in ("pool_size", "no_eval_leakage"):
            assert evaluation.passed, (name, evaluation.metadata)
    warehouse = Warehouse(paths.warehouse)
    evaluations = warehouse.query("SELECT task, method, system, n FROM evaluations ORDER BY ALL")
    assert evaluations.height == 2 * 2 * 3
    assert set(evaluations["system"]) == {"system1", "system2", "distilled"}
    assert set(evaluations["n"]) == {4}
    # Every train input has a pool row, kept or not.
    pool = warehouse.query("SELECT task, method, count(*) AS n FROM curated_pool GROUP BY ALL")
    assert set(pool["n"]) == {6}
    current = paths.checkpoints / "tiny" / "coin_flip" / "rar_1step" / "current"
    assert (current / "README.md").exists()
