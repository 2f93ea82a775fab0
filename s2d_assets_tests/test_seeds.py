"""Seeds as replicates: one asset per stage, each seed's rows under its own experiment name."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from s2d_assets.config.experiment import ExperimentError, parse_experiment, replicate_base
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.definitions import build_definitions
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment


@pytest.mark.timeout(30)
def test_replicates_shift_every_seed(tiny_model_dir: Path) -> None:
    experiment = parse_experiment(tiny_experiment_data(tiny_model_dir, seeds=[3, 4, 7]))
    assert experiment.seed == 3  # the first seed is the experiment's own
    replicates = experiment.replicates()
    assert [r.name for r in replicates] == ["tiny", "tiny.seed4", "tiny.seed7"]
    assert [r.seed for r in replicates] == [3, 4, 7]
    assert [r.tasks["coin_flip"].seed for r in replicates] == [0, 1, 4]
    assert [r.training.seed for r in replicates] == [0, 1, 4]
    assert [replicate_base(r.name) for r in replicates] == [("tiny", None), ("tiny", 4), ("tiny", 7)]
    single = parse_experiment(tiny_experiment_data(tiny_model_dir))
    assert single.replicates() == [single]  # one seed: the experiment as written
    with pytest.raises(ExperimentError, match="repeat a seed"):
        parse_experiment(tiny_experiment_data(tiny_model_dir, seeds=[1, 1]))


@pytest.mark.timeout(240)
def test_three_seeds_materialise_as_one_graph(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tiny_experiment_data(
        tiny_model_dir,
        seeds=[0, 1, 2],
        tasks={"coin_flip": {"kind": "coin_flip", "n_people": 2, "train_size": 6, "eval_size": 4, "name_pool": 50}},
        methods={"rar_1step": {"kind": "rar_1step", "max_new_tokens": {"respond": 8}}},
    )
    path = write_experiment(tmp_path / "tiny.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    single = build_definitions(parse_experiment({**data, "seeds": None}, path), path, paths)
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert keys == set(single.resolve_asset_graph().get_all_asset_keys())  # the graph does not grow with seeds
    assert AssetKey(["tiny", "coin_flip", "rar_1step", "evaluation"]) in keys
    with DagsterInstance.ephemeral() as instance:
        result = materialize(defs.assets, resources=defs.resources, instance=instance)  # type: ignore[arg-type]
        assert result.success
        evaluation = instance.get_latest_materialization_event(
            AssetKey(["tiny", "coin_flip", "rar_1step", "evaluation"])
        )
        assert evaluation is not None
        metadata = evaluation.asset_materialization.metadata  # type: ignore[union-attr]
        assert "seed2/system1_accuracy" in metadata
        assert "data:image/png" in metadata["accuracy_vs_tokens"].value
    warehouse = Warehouse(paths.warehouse)
    rows = warehouse.query("SELECT experiment, system, n FROM evaluations ORDER BY ALL")
    assert sorted(set(rows["experiment"])) == ["tiny", "tiny.seed1", "tiny.seed2"]
    assert rows.height == 3 * 3 and set(rows["n"]) == {4}
    evals = warehouse.query(
        "SELECT experiment, list(input_id ORDER BY input_id) AS ids FROM inputs WHERE split = 'eval' GROUP BY 1"
    )
    draws = {tuple(ids) for ids in evals["ids"]}
    assert len(draws) == 3  # each seed draws its own eval split
    for name in ("tiny", "tiny.seed1", "tiny.seed2"):
        assert (paths.checkpoint(name, "coin_flip", "rar_1step") / "current" / "README.md").exists()
