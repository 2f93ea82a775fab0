"""Shared pieces of the Ray tests: one local cluster per session, engines that count or fail, stage runs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s2d_assets import distill
from s2d_assets.config.engine import EngineSpec
from s2d_assets.core.stage_result import StageResult
from s2d_assets.engines import build_engine
from s2d_assets.engines.base import Completion, Engine, GenerationRequest
from s2d_assets_tests.conftest import tiny_experiment_data

NO_RAY = "the ray extra is not installed (make setup-ray, or pip install -e '.[ray]')"
# Two replicas on a 2-CPU cluster: half a CPU each leaves one for Ray Data's checkpoint filter on a re-run.
RAY_SETTINGS: dict[str, Any] = {"replicas": 2, "cpus_per_replica": 0.5}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local Ray cluster for the whole session (start-up takes seconds), shut down at the end."""
    ray = pytest.importorskip("ray", reason=NO_RAY)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def ray_experiment_data(model_dir: Path, **ray: Any) -> dict[str, Any]:
    """The tiny experiment of the other tests, its engine on the Ray executor."""
    data = tiny_experiment_data(model_dir)
    data["engine"] = {**data["engine"], "executor": "ray", "ray": {**RAY_SETTINGS, **ray}}
    return data


def run_generation_stages(ctx: distill.StageContext) -> dict[str, StageResult]:
    """Inputs, System 1 and System 2 generations and the pools of every task and method, in order."""
    results: dict[str, StageResult] = {}
    base = ctx.base_model()
    for task in ctx.experiment.tasks:
        distill.write_inputs(ctx, task)
        distill.write_perturbed_inputs(ctx, task)
        results[f"{task}/s1_generations"] = distill.generate_system1_baseline(ctx, task, base)
        for method in ctx.experiment.methods:
            results[f"{task}/{method}/s2_generations"] = distill.generate_system2(ctx, task, method, base)
            results[f"{task}/{method}/curated_pool"] = distill.curate(ctx, task, method)
    return results


def rows(ctx: distill.StageContext, sql: str) -> list[tuple[Any, ...]]:
    with ctx.warehouse.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


CACHE_ROWS = "SELECT cache_key, model, request, output, prompt_tokens, completion_tokens FROM llm_cache ORDER BY ALL"
POOL_ROWS = "SELECT * EXCLUDE (experiment) FROM curated_pool ORDER BY ALL"
GENERATION_ROWS = (
    "SELECT task, method, system, split, input_id, variant_id, sample_idx, output, answer, cache_key "
    "FROM generations ORDER BY ALL"
)


# -- engines that count what they generate, slow down, or fail -----------------------------------------


@dataclass(frozen=True)
class CountingFactory:
    """Builds the experiment's own engine inside a replica, wrapped to log every key it generates."""

    spec: EngineSpec
    log_dir: str
    seconds_per_batch: float = 0.0
    fail_sample: int | None = None  # a batch holding this sample index raises (a scripted failure)

    def __call__(self, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> Engine:
        engine = build_engine(self.spec, model_dir, fingerprint, adapter_dir)
        return CountingEngine(engine, fingerprint, Path(self.log_dir), self.seconds_per_batch, self.fail_sample)


class CountingEngine:
    def __init__(
        self, engine: Engine, fingerprint: str, log_dir: Path, seconds_per_batch: float, fail_sample: int | None
    ) -> None:
        self.engine, self.fingerprint, self.log_dir = engine, fingerprint, log_dir
        self.seconds_per_batch, self.fail_sample = seconds_per_batch, fail_sample

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if any(request.sample_idx == self.fail_sample for request in requests):
            raise RuntimeError(f"scripted failure of sample {self.fail_sample}")
        completions = self.engine.generate(requests)
        time.sleep(self.seconds_per_batch)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{os.getpid()}.log").open("a") as log:
            log.writelines(request.cache_key(self.fingerprint) + "\n" for request in requests)
        return completions


def generated_keys(log_dir: Path) -> list[str]:
    """Every key any replica generated, once per time it was generated."""
    return [line.strip() for path in sorted(log_dir.glob("*.log")) for line in path.read_text().splitlines()]
