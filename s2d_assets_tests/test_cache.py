from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.core.warehouse import Warehouse
from s2d_assets.engines import CachedEngine, GenerationCache, GenerationRequest, SamplingParams
from s2d_assets_tests.fakes import ScriptedEngine

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=16)


def requests(n_prompts: int, n_samples: int) -> list[GenerationRequest]:
    return [
        GenerationRequest.user(f"question {p}", PARAMS, sample_idx=s, seed=s)
        for p in range(n_prompts)
        for s in range(n_samples)
    ]


def cached(warehouse: Warehouse, engine: ScriptedEngine, batch_size: int = 4) -> CachedEngine:
    return CachedEngine("model-a", lambda: engine, GenerationCache(warehouse), batch_size=batch_size)


def echo(request: GenerationRequest) -> str:
    return f"{request.messages[-1][1]} / sample {request.sample_idx}"


def test_miss_then_hit(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    first_engine = ScriptedEngine(echo)
    first = cached(warehouse, first_engine)
    out = first.generate(requests(3, 2))
    assert [c.text for c in out][:2] == ["question 0 / sample 0", "question 0 / sample 1"]
    assert first.stats.misses == 6 and first.stats.hits == 0
    assert warehouse.count("llm_cache") == 6

    second_engine = ScriptedEngine(echo)
    second = cached(warehouse, second_engine)
    again = second.generate(requests(3, 2))
    assert [c.text for c in again] == [c.text for c in out]
    assert second.stats.hits == 6 and second.stats.misses == 0
    assert second_engine.calls == []  # no LLM call at all
    assert second._engine is None  # and the model was never even loaded


def test_key_covers_model_messages_params_and_sample(tmp_path: Path) -> None:
    base = GenerationRequest.user("q", PARAMS, sample_idx=0, seed=1)
    variants = [
        GenerationRequest.user("q2", PARAMS, sample_idx=0, seed=1),
        GenerationRequest.user("q", SamplingParams(0.8, 0.95, 16), sample_idx=0, seed=1),
        GenerationRequest.user("q", SamplingParams(0.7, 0.95, 32), sample_idx=0, seed=1),
        GenerationRequest.user("q", PARAMS, sample_idx=1, seed=1),
        GenerationRequest.user("q", PARAMS, sample_idx=0, seed=2),
    ]
    keys = {base.cache_key("m")} | {v.cache_key("m") for v in variants} | {base.cache_key("other-model")}
    assert len(keys) == 7
    assert GenerationRequest.user("q", PARAMS, 0, 1).cache_key("m") == base.cache_key("m")


def test_duplicate_requests_are_generated_once(tmp_path: Path) -> None:
    engine = ScriptedEngine(echo)
    same = [GenerationRequest.user("q", PARAMS)] * 3
    out = cached(Warehouse(tmp_path / "w.duckdb"), engine).generate(same)
    assert len(out) == 3 and len(engine.requests) == 1


def test_interrupted_generation_resumes_without_redoing_finished_batches(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    crashing = ScriptedEngine(echo, fail_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        cached(warehouse, crashing, batch_size=4).generate(requests(5, 2))  # 10 requests = 3 batches
    assert warehouse.count("llm_cache") == 8  # two committed batches survived the crash

    resumed_engine = ScriptedEngine(echo)
    resumed = cached(warehouse, resumed_engine, batch_size=4)
    out = resumed.generate(requests(5, 2))
    assert len(out) == 10
    assert len(resumed_engine.requests) == 2  # only the batch in flight is redone
    assert resumed.stats.hits == 8
