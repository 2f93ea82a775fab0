"""The shipped sycophancy/S2A experiment validates, and its graph materialises with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from dagster import AssetKey, DagsterInstance, materialize

from s2d_assets.config.experiment import PROJECT_ROOT, load_experiment, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.definitions import build_definitions
from s2d_assets_tests.conftest import write_experiment

SHIPPED = PROJECT_ROOT / "experiments" / "sycophancy_s2a.yaml"


def test_the_shipped_file_validates() -> None:
    experiment = load_experiment(SHIPPED)
    assert experiment.methods["s2a"].kind == "s2a"
    assert experiment.tasks["sycophancy"].perturbations == ("option_swap",)  # type: ignore[union-attr]
    assert experiment.curation_for("s2a").filter == "perturbation"
    assert experiment.seeds == (0, 1, 2)


def test_its_graph_materialises_end_to_end_with_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(SHIPPED.read_text())
    data.pop("seeds")  # one replicate: the graph is the same for every seed
    data["model"] = {"source": "path", "path": str(tiny_model_dir)}
    data["engine"] = {"kind": "transformers", "batch_size": 16, "dtype": "float32"}
    data["n_samples"] = 2
    data["tasks"]["sycophancy"].update(train_size=3, eval_size=2)
    data["methods"]["s2a"]["max_new_tokens"] = {"regenerate": 6, "answer": 4}
    data["training"].update(epochs=1, batch_size=2, max_length=2048, lora_r=2, lora_alpha=4)
    path = write_experiment(tmp_path / "syco.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    assert (
        AssetKey(["sycophancy_s2a", "sycophancy", "s2a", "evaluation"])
        in defs.resolve_asset_graph().get_all_asset_keys()
    )
    with DagsterInstance.ephemeral() as instance:
        result = materialize(defs.assets, resources=defs.resources, instance=instance)  # type: ignore[arg-type]
        assert result.success
    warehouse = Warehouse(paths.warehouse)
    variants = warehouse.query("SELECT variant_id, answer_map FROM perturbed_inputs ORDER BY input_id, variant_id")
    assert variants["variant_id"].to_list() == [0, 1] * 3
    assert json.loads(variants["answer_map"][1]) == {"(A)": "(B)", "(B)": "(A)"}
    generations = warehouse.query("SELECT steps FROM generations WHERE system = 'system2' AND split = 'train'")
    assert generations.height == 3 * 2 * 2
    assert [s["name"] for s in json.loads(generations["steps"][0])] == ["regenerate", "answer"]
    assert warehouse.query("SELECT count(*) FROM curated_pool").item() == 3
    systems = warehouse.query("SELECT system, n FROM evaluations ORDER BY system").rows()
    assert systems == [("distilled", 2), ("system1", 2), ("system2", 2)]
