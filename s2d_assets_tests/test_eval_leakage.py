"""The no_eval_leakage check compares normalised prompts, not ids, and blocks training when an eval question leaks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.checks import check_result
from s2d_assets.defs.definitions import MATERIALIZE_ALL, build_definitions
from s2d_assets.distill.checks import eval_leakage
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment

TRAIN = [("t1", "A coin is heads up. Ann flips the coin. Is the coin still heads up?"), ("t2", "Is the sky blue?")]
EVAL = [("e1", "a coin is heads up.  ANN flips the coin. Is the coin still heads up?"), ("e2", "Is grass red?")]


def inputs_frame(task: str) -> pl.DataFrame:
    rows = [(i, "train", p, "") for i, p in TRAIN] + [(i, "eval", p, "no") for i, p in EVAL]
    return pl.DataFrame(
        {
            "task": task,
            "split": [r[1] for r in rows],
            "input_id": [r[0] for r in rows],
            "prompt": [r[2] for r in rows],
            "reference": [r[3] for r in rows],
            "meta": json.dumps({}),
        }
    )


def distillation(task: str, method: str, ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"task": task, "method": method, "input_id": ids, "prompt": ids, "completion": "yes"})


def test_a_leaking_input_set_fails_the_check_whatever_the_ids(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", "e")
    warehouse.replace_rows("inputs", {"task": "coin"}, inputs_frame("coin"))
    # t1 has its own id, but its question is the eval question e1 (case and spaces aside).
    warehouse.replace_rows("distillation_set", {"task": "coin", "method": "m"}, distillation("coin", "m", ["t1", "t2"]))
    result = check_result(eval_leakage(warehouse, "coin", "m"))  # as Dagster records it
    assert not result.passed
    assert result.metadata["leaked_inputs"].value == 1
    assert "t1 (= eval e1)" in result.metadata["examples"].value


@pytest.mark.parametrize(("ids", "passed"), [(["t2"], True), (["e2"], False), (["ghost"], False)])
def test_eval_ids_and_unknown_inputs_fail_clean_sets_pass(tmp_path: Path, ids: list[str], passed: bool) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", "e")
    warehouse.replace_rows("inputs", {"task": "coin"}, inputs_frame("coin"))
    warehouse.replace_rows("distillation_set", {"task": "coin", "method": "m"}, distillation("coin", "m", ids))
    assert eval_leakage(warehouse, "coin", "m").passed is passed


@pytest.mark.timeout(120)
def test_the_blocking_check_stops_training_on_a_leaking_input_set(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Through Dagster: inputs that leak (written behind the pipeline's back) fail the check; no checkpoint."""
    data = tiny_experiment_data(tiny_model_dir, checks={"min_pool_size": 0})
    data["tasks"] = {"coin_flip": data["tasks"]["coin_flip"]}
    data["methods"] = {"rar_1step": data["methods"]["rar_1step"]}
    path = write_experiment(tmp_path / "tiny.yaml", data)
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(parse_experiment(data, path), path, paths)
    warehouse = Warehouse(paths.warehouse, "tiny")
    warehouse.replace_rows("inputs", {"task": "coin_flip"}, inputs_frame("coin_flip"))
    pool = pl.DataFrame(
        {"task": "coin_flip", "method": "rar_1step", "input_id": ["t1", "t2"], "answer": "yes", "votes": "{}"}
        | {"n_samples": 4, "agreement": 1.0, "kept": True, "reason": "kept"}
    )
    warehouse.replace_rows("curated_pool", {"task": "coin_flip", "method": "rar_1step"}, pool)
    dataset = AssetKey(["tiny", "coin_flip", "rar_1step", "distillation_set"])
    checkpoint = AssetKey(["tiny", "coin_flip", "rar_1step", "s1_checkpoint"])
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(MATERIALIZE_ALL).execute_in_process(
            instance=instance, asset_selection=[dataset, checkpoint], raise_on_error=False
        )
    leakage = {e.check_name: e for e in result.get_asset_check_evaluations()}["no_eval_leakage"]
    assert not leakage.passed and leakage.metadata["leaked_inputs"].value == 1
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert dataset in materialized and checkpoint not in materialized
    assert not (paths.checkpoints / "tiny" / "coin_flip" / "rar_1step" / "current").exists()
