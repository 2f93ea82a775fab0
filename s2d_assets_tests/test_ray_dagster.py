"""Dagster drives Ray through dagster-ray: the `ray` resource is required by the assets that run on Ray
only, and the run's metadata and log carry the job's rows, samples per second and failed rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, materialize

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.defs.on_ray import RAY_RESOURCE
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment
from s2d_assets_tests.ray_support import NO_RAY, CountingFactory, ray_cluster, ray_experiment_data, rows  # noqa: F401

pytest.importorskip("dagster_ray", reason=NO_RAY)
pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_only_assets_that_run_on_ray_require_the_ray_resource(tiny_model_dir: Path, tmp_path: Path) -> None:
    from s2d_assets.defs.ray_resources import LocalRayCluster, RayClusterAt

    def requiring(data: dict) -> set[str]:
        path = write_experiment(tmp_path / "e.yaml", data)
        defs = build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "state"))
        graph = defs.resolve_asset_graph()
        keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
        return {"/".join(k.path[1:]) for k in keys if RAY_RESOURCE in graph.get(k).assets_def.required_resource_keys}

    local = tiny_experiment_data(tiny_model_dir)
    assert requiring(local) == set()
    on_ray = requiring(ray_experiment_data(tiny_model_dir))
    assert on_ray == {
        f"{task}/{name}"
        for task in ("last_letter", "coin_flip")
        for name in (
            "s1_generations",
            *(f"{m}/{s}" for m in ("rar_1step", "rar_2step") for s in ("s2_generations", "evaluation")),
        )
    }
    training = requiring({**local, "training": {**local["training"], "workers": 2}})
    assert training == {
        f"{t}/{m}/s1_checkpoint" for t in ("last_letter", "coin_flip") for m in ("rar_1step", "rar_2step")
    }
    data = ray_experiment_data(tiny_model_dir)
    path = write_experiment(tmp_path / "r.yaml", data)
    assert isinstance(
        build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s")).resources[RAY_RESOURCE],
        LocalRayCluster,
    )
    data["engine"]["ray"]["address"] = "ray://head:10001"
    resource = build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s")).resources[RAY_RESOURCE]
    assert isinstance(resource, RayClusterAt) and resource.ray_address == "ray://head:10001"


@pytest.mark.usefixtures("ray_cluster")
def test_a_generation_asset_on_ray_reports_rows_speed_and_failed_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = ray_experiment_data(tiny_model_dir)
    path = write_experiment(tmp_path / "tiny.yaml", data)
    paths = StatePaths(tmp_path / "state")
    experiment = parse_experiment(data, path)
    defs = build_definitions(experiment, path, paths)
    # Sample 1 of every input fails on the cluster: those rows are logged and shown, never cached.
    factory = CountingFactory(experiment.engine, str(tmp_path / "log"), fail_sample=1)
    key = AssetKey(["tiny", "coin_flip", "rar_1step", "s2_generations"])
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            list(defs.assets),  # type: ignore[arg-type]
            selection=AssetSelection.keys(key).upstream(),
            resources={**defs.resources, "s2d": distill.StageContext(experiment, paths, engine_factory=factory)},
            instance=instance,
        )
        assert result.success
        events = result.get_asset_materialization_events()
        (materialization,) = [event.materialization for event in events if event.asset_key == key]
        logs = [record.user_message for record in instance.all_logs(result.run_id)]
    metadata = {name: value.value for name, value in materialization.metadata.items()}
    train_inputs, steps = 6, 2  # RaR 1-step answers in two calls: respond, then the answer in its own turn
    assert metadata["failed_rows"] == train_inputs * steps  # one sample of each input, in each step
    assert metadata["ray_rows"] == metadata["cache_misses"] == train_inputs * 4 * steps
    assert metadata["ray_samples_per_second"] > 0
    assert any("Ray job of 24 row(s)" in line for line in logs) and any("6 row(s) failed" in line for line in logs)
    ctx = distill.StageContext(experiment, paths)
    failed = rows(ctx, "SELECT cache_key, stage, error FROM generation_failures ORDER BY ALL")
    assert len(failed) == train_inputs * steps and {stage for _, stage, _ in failed} == {"coin_flip/rar_1step"}
    assert all("scripted failure of sample 1" in error for _, _, error in failed)
    assert rows(
        ctx, "SELECT count(*) FROM llm_cache WHERE cache_key IN (SELECT cache_key FROM generation_failures)"
    ) == [(0,)]
    # The failed samples are in the stage's rows as unanswered ones, not dropped.
    assert rows(ctx, "SELECT count(*) FROM generations WHERE sample_idx = 1 AND output = '' AND answer IS NULL") == [
        (6,)
    ]
