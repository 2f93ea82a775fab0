"""The Coconut assets: switched on only by the experiment's coconut section, lineage, one end-to-end run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetsDefinition, AssetSelection, DagsterInstance, materialize

from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, ExperimentError, load_experiment, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.defs.tables import table_producers
from s2d_assets_tests.conftest import write_experiment


def coconut_data(**overrides: Any) -> dict[str, Any]:
    coconut: dict[str, Any] = {
        "task": {"kind": "prosqa", "train_size": 12, "eval_size": 6, "n_nodes": 5, "min_hops": 1},
        "scratch": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
        "max_stage": 2,
        "training": {"epochs_per_stage": 1, "baseline_epochs": 1, "learning_rate": 0.003, "batch_size": 6},
        "max_new_tokens": 12,
        **overrides,
    }
    return {"name": "coconut_tiny", "tasks": {}, "methods": {}, "coconut": coconut}


def keys(defs) -> set[str]:  # type: ignore[no-untyped-def]
    return {"/".join(k.path[1:]) for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_default_experiment_has_no_coconut_assets(tmp_path: Path) -> None:
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    assert experiment.coconut is None
    defs = build_definitions(experiment, DEFAULT_EXPERIMENT, StatePaths(tmp_path))
    assert not any("coconut" in key for key in keys(defs))


def test_empty_tasks_need_a_coconut_section(tmp_path: Path) -> None:
    data = coconut_data()
    del data["coconut"]
    with pytest.raises(ExperimentError, match="tasks: at least one entry is required"):
        parse_experiment(data, tmp_path / "e.yaml")
    bad = coconut_data(max_stage=0)
    with pytest.raises(ExperimentError, match=r"coconut\.max_stage"):
        parse_experiment(bad, tmp_path / "e.yaml")


def test_stage_lineage_and_what_moves_code_versions(tmp_path: Path) -> None:
    data = coconut_data()
    path = tmp_path / "e.yaml"
    defs = build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s"))
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {"/".join(k.path[1:]) for k in graph.get(AssetKey(["coconut_tiny", *key.split("/")])).parent_keys}

    assert "base_model" not in {"/".join(k.path[1:]) for k in graph.get_all_asset_keys()}  # scratch model only
    assert parents("prosqa/coconut/init_model") == {"prosqa/coconut/raw_inputs"}
    assert parents("prosqa/coconut/stage_0") == {"prosqa/coconut/init_model", "prosqa/coconut/raw_inputs"}
    assert parents("prosqa/coconut/stage_2") == {"prosqa/coconut/stage_1", "prosqa/coconut/raw_inputs"}
    assert parents("prosqa/coconut/baseline_pause") == {"prosqa/coconut/init_model", "prosqa/coconut/raw_inputs"}
    assert parents("prosqa/coconut/evaluation") == {
        "prosqa/coconut/stage_2",
        "prosqa/coconut/baseline_no_cot",
        "prosqa/coconut/baseline_cot",
        "prosqa/coconut/baseline_pause",
        "prosqa/coconut/raw_inputs",
    }
    # SQL lineage: the tables each asset declares it writes (none for the checkpoints), never its name
    stage_assets = [a for a in defs.assets if isinstance(a, AssetsDefinition)]
    producers = {table: ["/".join(k.path[1:]) for k in keys] for table, keys in table_producers(stage_assets).items()}
    written = ("generations", "answer_counts", "evaluations", "evaluation_groups")
    assert producers == {"inputs": ["prosqa/coconut/raw_inputs"], **{t: ["prosqa/coconut/evaluation"] for t in written}}
    data["coconut"]["max_new_tokens"] = 20
    after = build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s")).resolve_asset_graph()
    changed = {
        "/".join(k.path[1:])
        for k in graph.get_all_asset_keys()
        if graph.get(k).code_version != after.get(k).code_version
    }
    assert changed == {"prosqa/coconut/evaluation"}


def test_coconut_graph_materialises_end_to_end(tmp_path: Path) -> None:
    data = {**coconut_data(), "seeds": [0, 1]}  # two replicates: each its own graphs, training and rows
    path = write_experiment(tmp_path / "coconut.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    assert {key for key in keys(defs) if key.startswith("prosqa/")} == {
        "prosqa/coconut/source_names",  # the census names the generator draws people from, observed
        "prosqa/coconut/raw_inputs",
        "prosqa/coconut/init_model",
        *(f"prosqa/coconut/stage_{k}" for k in range(3)),
        *(f"prosqa/coconut/baseline_{b}" for b in ("no_cot", "cot", "pause")),
        "prosqa/coconut/evaluation",
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            defs.assets,  # type: ignore[arg-type]
            resources=defs.resources,
            instance=instance,
            selection=AssetSelection.groups("coconut"),
        )
        assert result.success
    warehouse = Warehouse(paths.warehouse)
    rows = warehouse.query(
        "SELECT experiment, system, n, accuracy, mean_tokens FROM evaluations WHERE method = 'coconut'"
    )
    assert sorted(set(rows["experiment"])) == ["coconut_tiny", "coconut_tiny.seed1"]
    first = rows.filter(rows["experiment"] == "coconut_tiny")
    assert set(first["system"]) == {"no_cot", "cot", "pause", "coconut"}
    assert set(rows["n"]) == {6} and rows.height == 8
    tokens = dict(zip(first["system"], first["mean_tokens"], strict=True))
    assert tokens["coconut"] >= 2 and tokens["pause"] >= 2  # the two thoughts count as spent tokens
    generations = warehouse.query("SELECT count(*) AS n FROM generations WHERE method = 'coconut'")
    assert generations["n"][0] == 2 * 4 * 6
    questions = warehouse.query(
        "SELECT experiment, list(prompt ORDER BY prompt) AS prompts FROM inputs WHERE task = 'prosqa' GROUP BY 1"
    )
    first_seed, second_seed = (prompts.to_list() for prompts in questions["prompts"])
    assert questions.height == 2 and first_seed != second_seed  # each seed its own graphs
    for name in ("coconut_tiny", "coconut_tiny.seed1"):
        root = paths.checkpoints / name / "prosqa" / "coconut"
        card = (root / "stage_2" / "current" / "README.md").read_text()
        assert "Coconut stage_2" in card and "stage_1" in card  # lineage: trained from the previous stage
