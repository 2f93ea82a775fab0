"""Generation stages on a local Ray cluster (engine.executor: ray): the same cache rows and pools as in process,
and a killed job that resumes without generating a finished sample twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.ray_support import (
    CACHE_ROWS,
    GENERATION_ROWS,
    NO_RAY,
    POOL_ROWS,
    CountingFactory,
    generated_keys,
    ray_cluster,  # noqa: F401  (the session's cluster)
    ray_experiment_data,
    rows,
    run_generation_stages,
)

ray = pytest.importorskip("ray", reason=NO_RAY)
pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def in_process(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> distill.StageContext:
    """The reference: the same stages with the in-process engine."""
    ctx = distill.StageContext(
        parse_experiment(tiny_experiment_data(tiny_model_dir)), StatePaths(tmp_path_factory.mktemp("local"))
    )
    run_generation_stages(ctx)
    return ctx


@pytest.mark.usefixtures("ray_cluster")
def test_generation_stages_on_ray_match_in_process(
    tiny_model_dir: Path, in_process: distill.StageContext, tmp_path: Path
) -> None:
    ctx = distill.StageContext(parse_experiment(ray_experiment_data(tiny_model_dir)), StatePaths(tmp_path / "state"))
    results = run_generation_stages(ctx)
    assert rows(ctx, CACHE_ROWS) == rows(in_process, CACHE_ROWS)
    assert rows(ctx, POOL_ROWS) == rows(in_process, POOL_ROWS)
    assert rows(ctx, GENERATION_ROWS) == rows(in_process, GENERATION_ROWS)
    generation = {name: r.metadata for name, r in results.items() if name.endswith("generations")}
    assert all(m["failed_rows"] == 0 and m["ray_rows"] == m["cache_misses"] > 0 for m in generation.values())
    assert rows(ctx, "SELECT count(*) FROM generation_failures") == [(0,)]
    assert not any(ctx.paths.ray_staging.glob("*")), "staging is removed once the results are in the warehouse"
    # A sample finished on the cluster is a cache hit afterwards: no job at all.
    again = distill.generate_system2(ctx, "coin_flip", "rar_2step", ctx.base_model()).metadata
    assert again["cache_misses"] == 0 and "ray_rows" not in again


KILLED_DRIVER = """
import json, sys
from pathlib import Path
from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets_tests.ray_support import CountingFactory

args = json.loads(sys.argv[1])
experiment = parse_experiment(args["experiment"])
factory = CountingFactory(experiment.engine, args["log_dir"], seconds_per_batch=args["seconds_per_batch"])
ctx = distill.StageContext(experiment, StatePaths(Path(args["state"])), engine_factory=factory)
distill.generate_system2(ctx, "coin_flip", "rar_1step", ctx.base_model())
"""


def committed_ids(state: Path) -> set[str]:
    """Sample ids whose results Ray Data committed (its checkpoint files, pending ones excluded)."""
    import pyarrow.parquet as pq

    files = [p for p in state.glob("ray/*/checkpoint/*.parquet") if not p.name.endswith(".pending.parquet")]
    return {key for path in files for key in pq.read_table(path).column("sample_id").to_pylist()}


def settled(read: Callable[[], set[str]], quiet: float = 2.0, limit: float = 30.0) -> set[str]:
    """``read()`` once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == last:
            return now
        last = now
    return last


@pytest.mark.usefixtures("ray_cluster")
def test_killed_job_resumes_without_generating_finished_samples_twice(
    tiny_model_dir: Path, in_process: distill.StageContext, tmp_path: Path
) -> None:
    # Two-row batches, each taking a while, so the job is killed with some batches committed and some not.
    data = ray_experiment_data(tiny_model_dir, batch_size=2, address=ray.get_runtime_context().gcs_address)
    experiment = parse_experiment(data)
    state = tmp_path / "state"
    ctx = distill.StageContext(experiment, StatePaths(state))
    distill.write_inputs(ctx, "coin_flip")
    distill.write_perturbed_inputs(ctx, "coin_flip")
    killed_log, rerun_log = tmp_path / "killed", tmp_path / "rerun"
    args = {"experiment": data, "state": str(state), "log_dir": str(killed_log), "seconds_per_batch": 1.5}
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, json.dumps(args)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while len(committed_ids(state)) < 4 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert driver.poll() is None, "the job ended before it could be killed"
        driver.send_signal(signal.SIGKILL)  # the Ray job's driver: Ray ends its actors with it
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    finished = settled(lambda: committed_ids(state))  # Ray ends the dead driver's workers within seconds
    assert 4 <= len(finished) < 24

    factory = CountingFactory(experiment.engine, str(rerun_log))
    rerun_ctx = distill.StageContext(experiment, StatePaths(state), engine_factory=factory)
    result = distill.generate_system2(rerun_ctx, "coin_flip", "rar_1step", rerun_ctx.base_model())
    distill.curate(rerun_ctx, "coin_flip", "rar_1step")

    rerun = generated_keys(rerun_log)
    assert not finished & set(rerun), "a sample finished before the kill was generated again"
    # The rerun generates the respond samples not finished before the kill, then RaR's 24 answer-stage
    # continuations (none had started: the job was killed in the first step).
    assert len(rerun) == len(set(rerun)) == (24 - len(finished)) + 24
    assert result.metadata["ray_resumed_rows"] == len(finished)
    # Committed samples were generated by the killed job; those it generated but had not committed are redone.
    killed = set(generated_keys(killed_log))
    assert finished <= killed and killed - finished <= set(rerun)

    stage = "task = 'coin_flip' AND method = 'rar_1step'"
    assert rows(rerun_ctx, f"{POOL_ROWS.split(' ORDER')[0]} WHERE {stage} ORDER BY ALL") == rows(
        in_process, f"{POOL_ROWS.split(' ORDER')[0]} WHERE {stage} ORDER BY ALL"
    )
    keys = "SELECT cache_key FROM generations WHERE " + stage
    cached = f"{CACHE_ROWS.split(' ORDER')[0]} WHERE cache_key IN ({keys}) ORDER BY ALL"
    assert rows(rerun_ctx, cached) == rows(in_process, cached)
