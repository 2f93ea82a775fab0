"""Engine selection in the experiment file, the vLLM request mapping, and refusals without vLLM/GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config.engine import OpenAICompatEngineSpec, TransformersEngineSpec, VLLMEngineSpec
from s2d_assets.config.experiment import ExperimentError, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.engines import build_engine
from s2d_assets.engines.vllm_engine import (
    EngineUnavailable,
    lora_args,
    require_vllm_and_gpu,
)
from s2d_assets_tests.conftest import tiny_experiment_data

OPENAI = {
    "kind": "openai_compat",
    "base_url": "http://127.0.0.1:8080/v1",
    "model": "smollm2",
    "assistant_prefix": "prefill",  # RaR answers in the assistant's turn
}
VLLM = {"kind": "vllm", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.85}


def code_versions(data: dict[str, Any], tmp_path: Path) -> dict[str, str | None]:
    path = tmp_path / "e.yaml"
    graph = build_definitions(parse_experiment(data, path), path, StatePaths(tmp_path / "s")).resolve_asset_graph()
    return {"/".join(k.path[1:]): graph.get(k).code_version for k in graph.get_all_asset_keys()}


GENERATION_ASSETS = {
    f"{task}/{asset}"
    for task in ("last_letter", "coin_flip")
    for asset in ("s1_generations", "rar_1step/s2_generations", "rar_2step/s2_generations")
} | {f"{task}/{method}/evaluation" for task in ("last_letter", "coin_flip") for method in ("rar_1step", "rar_2step")}


@pytest.mark.parametrize("engine", [OPENAI, VLLM, {"kind": "transformers", "dtype": "bfloat16"}])
def test_switching_the_engine_moves_only_generation_code_versions(engine: dict[str, Any], tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    before = code_versions(data, tmp_path)
    after = code_versions({**data, "engine": engine}, tmp_path)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == GENERATION_ASSETS


def test_throughput_settings_do_not_move_code_versions(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    base = code_versions({**data, "engine": OPENAI}, tmp_path)
    tuned = {**OPENAI, "concurrency": 32, "batch_size": 512, "max_retries": 9, "timeout_seconds": 5, "use_n": "never"}
    assert code_versions({**data, "engine": tuned}, tmp_path) == base
    vllm_base = code_versions({**data, "engine": VLLM}, tmp_path)
    vllm_tuned = {**VLLM, "tensor_parallel_size": 8, "gpu_memory_utilization": 0.5, "batch_size": 64}
    assert code_versions({**data, "engine": vllm_tuned}, tmp_path) == vllm_base
    # The served model is part of what is generated.
    other_model = code_versions({**data, "engine": {**OPENAI, "model": "another"}}, tmp_path)
    assert other_model["coin_flip/s1_generations"] != base["coin_flip/s1_generations"]


def test_engine_kind_defaults_to_transformers_and_bad_fields_are_named(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    assert isinstance(parse_experiment({**data, "engine": {"batch_size": 8}}).engine, TransformersEngineSpec)
    with pytest.raises(ExperimentError, match=r"engine\.openai_compat\.base_url"):
        parse_experiment({**data, "engine": {"kind": "openai_compat", "model": "m"}}, "x.yaml")
    with pytest.raises(ExperimentError, match=r"engine\.vllm\.dtype"):
        parse_experiment({**data, "engine": {"kind": "vllm", "dtype": "int3"}}, "x.yaml")
    with pytest.raises(ExperimentError, match="engine"):
        parse_experiment({**data, "engine": {"kind": "llamafile"}}, "x.yaml")


def test_transformers_producer_keeps_existing_cache_keys() -> None:
    # Cache entries written before engine kinds existed used "<kind>:<dtype>" as the engine part.
    assert TransformersEngineSpec(dtype="bfloat16").producer == "transformers:bfloat16"
    assert OpenAICompatEngineSpec(**OPENAI).producer != OpenAICompatEngineSpec(**{**OPENAI, "model": "x"}).producer


def test_vllm_lora_request_is_stable_per_checkpoint(tmp_path: Path) -> None:
    first = lora_args(tmp_path / "ckpt", "a1b2c3d4e5f6")
    assert first == lora_args(tmp_path / "ckpt", "a1b2c3d4e5f6")
    assert first.lora_path == str(tmp_path / "ckpt") and first.lora_int_id > 0
    assert lora_args(tmp_path / "other", "ffff000011").lora_int_id != first.lora_int_id


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_refuses_clearly_without_vllm(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"needs vLLM.*pip install -e '\.\[gpu\]'"):
        require_vllm_and_gpu()
    with pytest.raises(EngineUnavailable, match="needs vLLM"):
        build_engine(VLLMEngineSpec(kind="vllm"), Path("meta-llama/Llama-2-7b-chat-hf"), "f")


def test_openai_compat_refuses_local_adapters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load the LoRA checkpoint"):
        build_engine(OpenAICompatEngineSpec(**OPENAI), tmp_path, "f", adapter_dir=tmp_path / "adapter")


def test_vllm_refuses_clearly_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import s2d_assets.engines.vllm_engine as vllm_engine

    monkeypatch.setattr(vllm_engine.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineUnavailable, match="needs a CUDA GPU"):
        require_vllm_and_gpu()


def test_paper_scale_experiment_validates_without_loading_its_model(tmp_path: Path) -> None:
    from s2d_assets.config.experiment import PROJECT_ROOT, load_experiment
    from s2d_assets.distill import StageContext

    path = PROJECT_ROOT / "experiments" / "paper_scale.yaml"
    experiment = load_experiment(path)
    assert isinstance(experiment.engine, VLLMEngineSpec) and experiment.engine.tensor_parallel_size == 4
    assert experiment.model.hf_id == "meta-llama/Llama-2-70b-chat-hf"
    assert set(experiment.tasks) == {"last_letter", "coin_flip"}
    assert set(experiment.methods) == {"rar_1step", "rar_2step"}
    base = StageContext(experiment, StatePaths(tmp_path)).base_model()  # an id, not a download
    assert (base.name, str(base.path)) == ("meta-llama/Llama-2-70b-chat-hf", "meta-llama/Llama-2-70b-chat-hf")
    graph = build_definitions(experiment, path, StatePaths(tmp_path)).resolve_asset_graph()
    assert any(k.path[-1] == "s2_generations" for k in graph.get_all_asset_keys())
    with pytest.raises(ExperimentError, match=r"model\.hf_id is required"):
        parse_experiment({**tiny_experiment_data(tmp_path), "model": {"source": "hf_id"}}, "x.yaml")
