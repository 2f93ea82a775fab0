"""One materialisation of the whole graph with the tiny model, through Dagster."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.definitions import build_definitions
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment


def test_materialize_whole_graph(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tiny_experiment_data(tiny_model_dir)
    path = write_experiment(tmp_path / "tiny.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    assets = list(defs.resolve_asset_graph().get_all_asset_keys())
    assert AssetKey(["tiny", "coin_flip", "rar_2step", "evaluation"]) in assets
    with DagsterInstance.ephemeral() as instance:
        result = materialize(defs.assets, resources=defs.resources, instance=instance)  # type: ignore[arg-type]
        assert result.success
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
