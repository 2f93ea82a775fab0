"""The asset graph pinned: keys, groups, dependencies and what moves code versions."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey

from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, load_experiment, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.definitions import build_definitions
from s2d_assets_tests.conftest import tiny_experiment_data

EXPERIMENT = "default"  # the shipped default experiment's name: every asset key starts with it


def key(path: str) -> AssetKey:
    return AssetKey([EXPERIMENT, *path.split("/")])


EXPECTED_DEPS = {
    "base_model": set(),
    "coin_flip/source_names": set(),  # observed: the names package's version
    "coin_flip/source_inbox": set(),  # observed: the task's inbox folder
    "coin_flip/raw_inputs": {"coin_flip/source_names", "coin_flip/source_inbox"},
    "coin_flip/perturbed_inputs": {"coin_flip/raw_inputs"},
    "coin_flip/s1_generations": {"base_model", "coin_flip/raw_inputs"},
    "coin_flip/cot_zero_shot/s2_generations": {"base_model", "coin_flip/perturbed_inputs"},
    "coin_flip/cot_zero_shot/curated_pool": {"coin_flip/cot_zero_shot/s2_generations"},
    "coin_flip/cot_zero_shot/distillation_set": {"coin_flip/cot_zero_shot/curated_pool", "coin_flip/raw_inputs"},
    "coin_flip/cot_zero_shot/s1_checkpoint": {"coin_flip/cot_zero_shot/distillation_set", "base_model"},
    "coin_flip/cot_zero_shot/evaluation": {
        "coin_flip/cot_zero_shot/s1_checkpoint",
        "coin_flip/s1_generations",
        "base_model",
        "coin_flip/raw_inputs",
    },
}


SQL_MODELS = {"pool_summary", "agreement_histogram", "method_comparison", "token_cost", "disagreements"}


def graph(data: dict, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "e.yaml"
    return build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s")).resolve_asset_graph()


def test_default_graph_has_one_asset_per_task_method_stage(tmp_path: Path) -> None:
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    asset_graph = build_definitions(experiment, DEFAULT_EXPERIMENT, StatePaths(tmp_path)).resolve_asset_graph()
    keys = {"/".join(k.path[1:]) for k in asset_graph.get_all_asset_keys()}
    per_task = {"raw_inputs", "perturbed_inputs", "s1_generations"}
    per_method = {"s2_generations", "curated_pool", "distillation_set", "s1_checkpoint", "evaluation"}
    expected = {"base_model"}
    for task in experiment.tasks:
        expected |= {f"{task}/{stage}" for stage in (*per_task, "source_names", "source_inbox")}
        expected |= {f"{task}/{method}/{stage}" for method in experiment.methods for stage in per_method}
    sql_keys = {k for k in keys if asset_graph.get(key(k)).group_name == "sql"}
    assert keys - sql_keys == expected
    # The shipped SQL models depend on every asset that writes the tables they read.
    assert sql_keys == {f"analytics/{name}" for name in SQL_MODELS}
    evaluations = {f"{t}/{m}/evaluation" for t in experiment.tasks for m in experiment.methods}
    pools = {f"{t}/{m}/curated_pool" for t in experiment.tasks for m in experiment.methods}
    parents = {k: {"/".join(p.path[1:]) for p in asset_graph.get(key(k)).parent_keys} for k in sql_keys}
    assert parents["analytics/pool_summary"] == pools
    assert parents["analytics/method_comparison"] == evaluations | {"analytics/pool_summary"}
    assert parents["analytics/token_cost"] == evaluations
    for path, deps in EXPECTED_DEPS.items():
        assert {"/".join(k.path[1:]) for k in asset_graph.get(key(path)).parent_keys} == deps, path
    assert asset_graph.get(key("coin_flip/cot_zero_shot/curated_pool")).group_name == "coin_flip"


def test_code_versions_move_only_where_the_change_is(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    before = graph(data, tmp_path)
    data["methods"]["rar_1step"]["prompts"] = {"respond": '"{question}"\nRephrase, expand, and answer.'}
    data["methods"]["rar_2step"]["curation"] = {"min_agreement": 0.75}
    after = graph(data, tmp_path)
    changed = {
        "/".join(k.path[1:])
        for k in before.get_all_asset_keys()
        if before.get(k).code_version != after.get(k).code_version
    }
    assert changed == {
        "last_letter/rar_1step/s2_generations",
        "coin_flip/rar_1step/s2_generations",
        "last_letter/rar_1step/evaluation",
        "coin_flip/rar_1step/evaluation",
        "last_letter/rar_2step/curated_pool",
        "coin_flip/rar_2step/curated_pool",
    }


def test_automation_is_declared_on_the_assets(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Public automation conditions on every asset, one automation sensor, no schedule."""
    from dagster import DefaultSensorStatus, Definitions

    experiment = load_experiment(DEFAULT_EXPERIMENT)
    defs = build_definitions(experiment, DEFAULT_EXPERIMENT, StatePaths(tmp_path))
    Definitions.validate_loadable(defs)  # what `dagster dev` checks: unique job and op names, ...
    labels = {
        "/".join(spec.key.path[1:]): spec.automation_condition.get_label()  # type: ignore[union-attr]
        for spec in defs.resolve_all_asset_specs()
    }
    cron = experiment.schedule.refresh_cron
    for name, label in labels.items():
        stage = name.split("/")[-1]
        if stage.startswith("source_"):
            assert label == f"observe on cron ({cron})", name
        elif stage in ("s1_generations", "s2_generations"):
            assert label == f"on missing or on cron ({cron}) when changed", name
        elif stage == "base_model":
            assert label == "on missing or code version changed"
        else:  # inputs, pool, distillation set, checkpoint, evaluation, SQL models
            assert label == "eager or code version changed", name
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {"s2d_automation", "inbox_sensor"}
    assert sensors["s2d_automation"].default_status == DefaultSensorStatus.RUNNING
    assert not list(defs.schedules or [])
    monkeypatch.setenv("S2D_AUTOMATION", "stopped")
    stopped = build_definitions(experiment, DEFAULT_EXPERIMENT, StatePaths(tmp_path))
    assert {s.default_status for s in stopped.sensors} == {DefaultSensorStatus.STOPPED}
