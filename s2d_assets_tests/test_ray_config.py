"""The Ray executor's settings and processor configurations, checked field by field without a GPU.

Most of these need no Ray at all; the ones that build Ray's own config classes or ask the cluster for
GPUs say so and are skipped (with the reason) when that part of Ray is missing.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from s2d_assets.config.engine import OpenAICompatEngineSpec, TransformersEngineSpec, VLLMEngineSpec
from s2d_assets.config.experiment import PROJECT_ROOT, ExperimentError, load_experiment, parse_experiment
from s2d_assets.distill import plan
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.ray_executor import RayExecutor, import_ray
from s2d_assets.engines.ray_processors import (
    RayUnavailable,
    from_http_row,
    from_vllm_row,
    http_body,
    http_processor_kwargs,
    vllm_processor_kwargs,
    vllm_row,
)
from s2d_assets.engines.ray_staging import job_folder, request_from_json
from s2d_assets.methods import build_method
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.ray_support import NO_RAY, ray_cluster  # noqa: F401  (the session's cluster)

pytestmark = pytest.mark.ray

RAY_EXPERIMENT = PROJECT_ROOT / "experiments" / "paper_scale_ray.yaml"
HAS_RAY = importlib.util.find_spec("ray") is not None


def has_ray_data_llm() -> bool:
    try:
        import ray.data.llm  # noqa: F401
    except ImportError:
        return False
    return True


NO_RAY_DATA_LLM = "ray.data.llm is not importable here (Ray's llm extra: the gpu extra, or aiohttp for HTTP)"
REQUEST = GenerationRequest.user(
    "Is the coin still heads up?", SamplingParams(0.7, 0.95, 96), sample_idx=3, seed=2**40 + 7
)


# -- the settings -----------------------------------------------------------------------------------------


def test_ray_settings_never_move_code_versions_except_the_processor(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    method = build_method("rar_2step", {}, {}, None)

    def version(engine: dict[str, Any]) -> str:
        return plan.s2_generation_version(parse_experiment({**data, "engine": engine}), method)

    local = {"kind": "transformers", "dtype": "float32"}
    on_ray = {**local, "executor": "ray", "ray": {"replicas": 8, "address": "auto", "batch_size": 7}}
    # The transformers processor is the project's own engine: same text, same version, same cache producer.
    assert version(on_ray) == version(local)
    assert TransformersEngineSpec(**on_ray).producer == TransformersEngineSpec(**local).producer
    # ray.data.llm's processors are other implementations: another producer, another code version.
    openai = {
        "kind": "openai_compat",
        "base_url": "http://127.0.0.1:8080/v1",
        "model": "m",
        "assistant_prefix": "prefill",
    }
    assert version({**openai, "executor": "ray"}) != version(openai)
    assert version({**openai, "executor": "ray", "ray": {"replicas": 2}}) == version({**openai, "executor": "ray"})
    vllm = {"kind": "vllm", "executor": "ray"}
    assert version({**vllm, "ray": {"replicas": 4, "tensor_parallel_size": 8}}) == version(vllm)
    # Defaults are left out of dumps: experiments without the settings keep their fingerprints.
    assert "executor" not in TransformersEngineSpec().model_dump()
    assert "workers" not in parse_experiment(data).training.model_dump()


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"ray": {"replicas": 2}}, "apply only with executor: ray"),
        ({"executor": "ray", "ray": {"tensor_parallel_size": 2}}, "applies to engine kind 'vllm' only"),
        ({"executor": "ray", "ray": {"replicas": 0}}, "engine.transformers.ray.replicas"),
        ({"executor": "ray", "ray": {"gpu": 1}}, "engine.transformers.ray.gpu"),
        (
            {"kind": "vllm", "executor": "ray", "tensor_parallel_size": 4, "ray": {"tensor_parallel_size": 8}},
            "disagree",
        ),
    ],
)
def test_bad_ray_settings_are_refused_at_load(tmp_path: Path, engine: dict[str, Any], message: str) -> None:
    data = tiny_experiment_data(tmp_path)
    with pytest.raises(ExperimentError, match=message):
        parse_experiment({**data, "engine": {"kind": "transformers", **engine}}, "x.yaml")


def test_training_workers_is_checked(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    assert parse_experiment({**data, "training": {**data["training"], "workers": 2}}).training.workers == 2
    with pytest.raises(ExperimentError, match=r"training\.workers"):
        parse_experiment({**data, "training": {**data["training"], "workers": 0}}, "x.yaml")


def test_the_ray_paper_scale_experiment_is_paper_scale_on_ray() -> None:
    """The two files differ only in the name and the engine's executor settings."""
    on_ray = yaml.safe_load(RAY_EXPERIMENT.read_text())
    local = yaml.safe_load((PROJECT_ROOT / "experiments" / "paper_scale.yaml").read_text())
    assert {k: v for k, v in on_ray.items() if k not in ("name", "engine")} == {
        k: v for k, v in local.items() if k not in ("name", "engine")
    }
    engine = {k: v for k, v in on_ray["engine"].items() if k not in ("executor", "ray", "tensor_parallel_size")}
    assert engine == {k: v for k, v in local["engine"].items() if k != "tensor_parallel_size"}


# -- rows in and out ------------------------------------------------------------------------------------


def test_a_request_row_rebuilds_the_request_and_its_key() -> None:
    rebuilt = request_from_json(REQUEST.request_json())
    assert rebuilt == REQUEST and rebuilt.cache_key("producer") == REQUEST.cache_key("producer")


def test_job_folders_are_stable_per_stage_and_producer() -> None:
    folder = job_folder("/s/ray", "model:transformers:float32", "coin_flip/rar_1step")
    assert folder == job_folder("/s/ray/", "model:transformers:float32", "coin_flip/rar_1step")
    assert folder.startswith("/s/ray/coin_flip-rar_1step-")
    assert folder != job_folder("/s/ray", "model:transformers:bfloat16", "coin_flip/rar_1step")


def test_http_rows_are_the_in_process_engines_requests() -> None:
    from s2d_assets.engines.openai_compat import OpenAICompatEngine

    spec = OpenAICompatEngineSpec(kind="openai_compat", base_url="http://127.0.0.1:8080/v1/", model="smollm2")
    engine = OpenAICompatEngine(spec, "f")
    try:
        assert http_body(spec, REQUEST) == engine._body(REQUEST, n=1)
    finally:
        engine.close()
    good = {"choices": [{"index": 0, "message": {"content": " Yes. "}, "finish_reason": "stop"}], "usage": {
        "prompt_tokens": 11, "completion_tokens": 2}}  # fmt: skip
    row = from_http_row({"sample_id": "k", "http_response": good})
    assert (row["output"], row["prompt_tokens"], row["completion_tokens"], row["error"]) == ("Yes.", 11, 2, None)
    bad = from_http_row({"sample_id": "k", "http_response": {"choices": []}})
    assert bad["error"] == "malformed response: no choices" and bad["output"] == ""


def test_http_processor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = OpenAICompatEngineSpec(
        kind="openai_compat",
        base_url="http://10.0.0.5:8000/v1",
        model="llama",
        api_key_env="S2D_TEST_KEY",
        max_retries=3,
        backoff_seconds=0.5,
        executor="ray",
        ray={"replicas": 6, "batch_size": 32},
    )
    monkeypatch.setenv("S2D_TEST_KEY", "sk-test")
    kwargs = http_processor_kwargs(spec)
    assert kwargs == {
        "url": "http://10.0.0.5:8000/v1/chat/completions",
        "headers": {"Authorization": "Bearer sk-test"},
        "batch_size": 32,
        "concurrency": 6,
        "max_retries": 3,
        "base_retry_wait_time_in_s": 0.5,
    }
    monkeypatch.delenv("S2D_TEST_KEY")
    with pytest.raises(RayUnavailable, match="S2D_TEST_KEY is not set"):
        http_processor_kwargs(spec)
    if has_ray_data_llm():
        from ray.data.llm import HttpRequestProcessorConfig

        monkeypatch.setenv("S2D_TEST_KEY", "sk-test")
        config = HttpRequestProcessorConfig(**http_processor_kwargs(spec))
        assert (config.url, config.concurrency, config.batch_size, config.max_retries) == (kwargs["url"], 6, 32, 3)


# -- vLLM on Ray, from the experiment file, without a GPU ----------------------------------------------------


def test_vllm_processor_configuration_from_the_experiment_file_field_by_field(tmp_path: Path) -> None:
    experiment = load_experiment(RAY_EXPERIMENT)
    spec = experiment.engine
    assert isinstance(spec, VLLMEngineSpec) and spec.executor == "ray"
    kwargs = vllm_processor_kwargs(spec, "meta-llama/Llama-2-70b-chat-hf")
    assert kwargs["model_source"] == "meta-llama/Llama-2-70b-chat-hf"
    assert kwargs["concurrency"] == 4  # replicas: data parallel
    assert kwargs["batch_size"] == 256  # engine.ray.batch_size, not the 4096 requests of one stage call
    assert kwargs["accelerator_type"] == "A100"
    assert kwargs["should_continue_on_error"] is True
    assert kwargs["placement_group_config"] == {"bundle_per_worker": {"GPU": 1, "CPU": 1}, "strategy": "PACK"}
    assert kwargs["engine_kwargs"] == {
        "dtype": "bfloat16",
        "tensor_parallel_size": 8,
        "pipeline_parallel_size": 1,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
        "enable_lora": True,  # distilled checkpoints are LoRA requests on the same engine
        "max_lora_rank": 16,
        "seed": 0,
        "max_model_len": 4096,
    }
    assert set(kwargs) == {
        "model_source",
        "engine_kwargs",
        "batch_size",
        "concurrency",
        "accelerator_type",
        "should_continue_on_error",
        "placement_group_config",
        "chat_template_stage",
    }
    assert kwargs["chat_template_stage"] is False  # rows arrive rendered (vllm_row)
    # Pipeline parallel: each replica spans tensor x pipeline GPUs; a GPU count that disagrees is refused.
    two_stage = spec.model_copy(update={"ray": spec.ray.model_copy(update={"pipeline_parallel_size": 2})})
    assert vllm_processor_kwargs(two_stage, "m")["engine_kwargs"]["pipeline_parallel_size"] == 2
    wrong = spec.model_copy(update={"ray": spec.ray.model_copy(update={"gpus_per_replica": 4})})
    with pytest.raises(ValueError, match="one worker per GPU"):
        vllm_processor_kwargs(wrong, "m")


def test_vllm_rows_carry_each_samples_own_sampling(tiny_model_dir: Path) -> None:
    model = str(tiny_model_dir)
    row = vllm_row("/ckpt/abc", model)({"sample_id": "k", "request": REQUEST.request_json()})
    assert row["prompt"] == "<|im_start|>user\nIs the coin still heads up?<|im_end|>\n<|im_start|>assistant\n"
    assert row["sampling_params"] == {"seed": 2**40 + 7, "temperature": 0.7, "top_p": 0.95, "max_tokens": 96, "n": 1}
    assert row["model"] == "/ckpt/abc"  # the LoRA adapter, loaded by path
    greedy = GenerationRequest.user("q", SamplingParams(0.0, 1.0, 8), sample_idx=1, seed=5)
    assert (
        vllm_row(None, model)({"sample_id": "g", "request": greedy.request_json()})["sampling_params"]["seed"] is None
    )
    # A continuation leaves the assistant's message open, as LLM.chat(continue_final_message=True) does.
    turn = (("user", "Is the coin still heads up?"), ("assistant", "Let me see.\nTherefore, the answer (yes or no) is"))
    going_on = GenerationRequest(turn, SamplingParams(0.0, 1.0, 8))
    rendered = vllm_row(None, model)({"sample_id": "c", "request": going_on.request_json()})["prompt"]
    assert rendered.endswith("<|im_start|>assistant\nLet me see.\nTherefore, the answer (yes or no) is")
    done = from_vllm_row({"sample_id": "k", "generated_text": " B ", "num_input_tokens": 9, "num_generated_tokens": 3,
                          "time_taken_llm": 0.5, "__inference_error__": ""})  # fmt: skip
    assert (done["output"], done["prompt_tokens"], done["completion_tokens"], done["error"]) == ("B", 9, 3, None)
    failed = from_vllm_row({"sample_id": "k", "generated_text": "", "__inference_error__": "prompt too long"})
    assert failed["error"] == "prompt too long"


@pytest.mark.skipif(not has_ray_data_llm(), reason=NO_RAY_DATA_LLM)
def test_ray_accepts_the_vllm_processor_configuration() -> None:
    from ray.data.llm import vLLMEngineProcessorConfig

    spec = load_experiment(RAY_EXPERIMENT).engine
    assert isinstance(spec, VLLMEngineSpec)
    kwargs = vllm_processor_kwargs(spec, "meta-llama/Llama-2-70b-chat-hf")
    config = vLLMEngineProcessorConfig(**kwargs).model_dump()
    for name in ("model_source", "batch_size", "concurrency", "accelerator_type", "should_continue_on_error"):
        assert config[name] == kwargs[name]
    assert config["engine_kwargs"] == {**kwargs["engine_kwargs"], "task_type": "generate"}
    assert config["placement_group_config"]["strategy"] == "PACK"


@pytest.mark.skipif(not HAS_RAY, reason=NO_RAY)
@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
@pytest.mark.usefixtures("ray_cluster")
def test_vllm_on_ray_refuses_clearly_without_vllm_or_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import s2d_assets.engines.ray_processors as ray_processors

    spec = load_experiment(RAY_EXPERIMENT).engine
    local = spec.model_copy(update={"ray": spec.ray.model_copy(update={"address": None})})
    executor = RayExecutor(local, "meta-llama/Llama-2-70b-chat-hf", None, str(tmp_path / "ray"))
    with pytest.raises(RayUnavailable, match=r"needs vLLM .*pip install -e '\.\[gpu\]'"):
        executor.generate("producer", "coin_flip/rar_1step", [("k", REQUEST)])
    # With vLLM present, the CPU-only cluster is refused for its lack of GPUs.
    monkeypatch.setattr(ray_processors, "installed", lambda module: True)
    with pytest.raises(RayUnavailable, match="needs GPUs and the Ray cluster has none"):
        executor.generate("producer", "coin_flip/rar_1step", [("k", REQUEST)])
    assert not (tmp_path / "ray").exists(), "nothing is staged before the refusal"


def test_without_ray_the_executor_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(RayUnavailable, match=r"needs the ray extra .*make setup-ray"):
        import_ray()


def test_failed_rows_are_json_serialisable_results() -> None:
    # The result schema every processor writes (one Parquet schema for all of them).
    failed = from_vllm_row({"sample_id": "k", "__inference_error__": "boom"})
    assert json.loads(json.dumps(failed))["error"] == "boom"
