"""The vLLM engine's request mapping and the engine spec's vLLM validators, without vLLM.

Each test names the way the GPU path broke before it (see ``engines/vllm_engine.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config import engine as engine_config
from s2d_assets.config.engine import VLLM_LORA_RANKS, VLLMEngineSpec
from s2d_assets.config.experiment import ExperimentError, parse_experiment
from s2d_assets.engines.base import Completion, GenerationRequest, SamplingParams, derive_seed
from s2d_assets.engines.vllm_engine import check_adapter, engine_args, lora_args, plan_chat, plan_chats
from s2d_assets_tests.conftest import tiny_experiment_data

pytestmark = pytest.mark.timeout(60)

SAMPLED = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=96)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=32)


def samples(prompt: str, params: SamplingParams, n: int) -> list[GenerationRequest]:
    """N samples as the method runner builds them: a seed per sample, derived from its index and prompt."""
    return [GenerationRequest.user(prompt, params, sample_idx=k, seed=derive_seed(0, k, prompt)) for k in range(n)]


def test_engine_args_enable_lora_for_adapters_so_base_and_adapter_share_one_llm() -> None:
    spec = VLLMEngineSpec(kind="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.85, max_model_len=4096)
    args = engine_args(spec, "meta-llama/Llama-2-70b-chat-hf", seed=3)
    assert args.as_kwargs() == {
        "model": "meta-llama/Llama-2-70b-chat-hf",
        "dtype": "auto",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.85,
        "enable_prefix_caching": True,
        "enable_lora": True,
        "max_lora_rank": 64,
        "seed": 3,
        "max_model_len": 4096,
    }
    merged = VLLMEngineSpec(kind="vllm", lora="merged")
    assert engine_args(merged, "m").enable_lora is False


def test_greedy_samples_go_out_once_with_n_1() -> None:
    # Before: 8 greedy samples of one prompt became one request with n=8, which vLLM refuses
    # ("n must be 1 when using greedy sampling").
    requests = samples("q", GREEDY, 8) + samples("other", GREEDY, 2)
    plan = plan_chat(requests)
    assert all(s.n == 1 for s in plan.sampling)
    assert plan.rows == [list(range(8)), [8, 9]]
    assert [s.as_kwargs() for s in plan.sampling] == [
        {"n": 1, "seed": None, "temperature": 0.0, "top_p": 1.0, "max_tokens": 32}
    ] * 2
    # Different greedy settings are different requests.
    shorter = GenerationRequest.user("q", SamplingParams(0.0, 1.0, 8))
    assert len(plan_chat([*requests, shorter]).rows) == 3


def test_continuations_go_out_in_their_own_chat_call_that_continues_the_final_message() -> None:
    turn = (("user", "q"), ("assistant", "so the answer (yes or no) is"))
    continued = GenerationRequest(turn, GREEDY)
    requests = [*samples("q", GREEDY, 2), continued]
    (fresh_rows, fresh), (continued_rows, going_on) = plan_chats(requests)
    assert (fresh_rows, continued_rows) == ([0, 1], [2])
    assert fresh.template_kwargs() == {"add_generation_prompt": True, "continue_final_message": False}
    assert going_on.template_kwargs() == {"add_generation_prompt": False, "continue_final_message": True}
    assert going_on.conversations == [[{"role": "user", "content": "q"}, {"role": "assistant", "content": turn[1][1]}]]
    with pytest.raises(ValueError, match="plan them apart"):
        plan_chat(requests)


def test_every_sampled_request_carries_its_own_seed() -> None:
    # Before: sample k of a group ran with first.seed + k, so its text depended on which samples were
    # missing from the cache and on batch slicing; now a sample's request is a function of itself.
    requests = [
        *samples("q1", SAMPLED, 3),
        GenerationRequest(messages=(("system", "Be brief."), ("user", "q1")), params=SAMPLED, seed=13),
    ]
    plan = plan_chat(requests)
    assert plan.rows == [[0], [1], [2], [3]]
    assert [s.seed for s in plan.sampling] == [r.seed for r in requests]
    assert all(s.n == 1 for s in plan.sampling)
    assert plan.conversations[3] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q1"}]
    # The same sample asked alone (one cache miss) goes out exactly as it did in the batch.
    alone = plan_chat([requests[2]])
    assert (alone.conversations[0], alone.sampling[0]) == (plan.conversations[2], plan.sampling[2])


def test_lora_request_ids_are_stable_positive_and_accept_any_fingerprint(tmp_path: Path) -> None:
    first = lora_args(tmp_path / "ckpt", "a1b2c3d4e5f6:vllm:0123")
    assert first == lora_args(tmp_path / "ckpt", "a1b2c3d4e5f6:vllm:0123")
    assert first.lora_int_id >= 1 and first.lora_path == str(tmp_path / "ckpt")
    assert lora_args(tmp_path / "ckpt", "not-hex:vllm:x").lora_int_id >= 1
    assert lora_args(tmp_path / "other", "ffff000011").lora_int_id != first.lora_int_id


def test_completion_finish_reason_defaults_to_unknown() -> None:
    assert Completion("a", 1, 2).finish_reason is None
    assert Completion("a", 1, 2, 0.5, "length").finish_reason == "length"


# -- validators mirroring vLLM --------------------------------------------------------------------


@pytest.mark.parametrize("rank", [2, 4, 48, 100, 1024])
def test_max_lora_rank_outside_vllms_ranks_is_refused_at_load(rank: int, tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path, engine={"kind": "vllm", "max_lora_rank": rank})
    with pytest.raises(ExperimentError, match=r"engine\.vllm\.max_lora_rank.*vLLM accepts max_lora_rank in"):
        parse_experiment(data, "x.yaml")


@pytest.mark.parametrize("rank", VLLM_LORA_RANKS)
def test_every_vllm_rank_is_accepted(rank: int) -> None:
    assert VLLMEngineSpec(kind="vllm", max_lora_rank=rank).max_lora_rank == rank


def write_adapter(directory: Path, **config: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text(json.dumps({"r": 16, "lora_alpha": 32, "bias": "none", **config}))
    return directory


def test_adapter_rank_above_max_lora_rank_is_refused_naming_the_adapter(tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "checkpoints" / "rar_1step", r=128)
    with pytest.raises(ValueError, match=rf"LoRA adapter {adapter}: .*r=128 is above engine.max_lora_rank=64.*128"):
        check_adapter(adapter, 64)
    check_adapter(adapter, 128)
    check_adapter(write_adapter(tmp_path / "small", r=4), 8)


@pytest.mark.parametrize(
    ("config", "message"),
    [({"bias": "all"}, "trains biases"), ({"use_dora": True}, "DoRA"), ({"modules_to_save": ["lm_head"]}, "whole")],
)
def test_adapter_features_vllm_refuses_are_named(config: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        check_adapter(write_adapter(tmp_path / "a", **config), 64)


def test_check_experiment_refuses_hot_temperatures_and_big_ranks() -> None:
    spec = VLLMEngineSpec(kind="vllm", max_lora_rank=16)
    spec.check_experiment({"sampling.temperature": 2.0}, {"training.lora_r": 16})
    with pytest.raises(ValueError, match=r"sampling\.temperature: vLLM accepts temperatures in \[0, 2\], got 2\.5"):
        spec.check_experiment({"sampling.temperature": 2.5}, {})
    with pytest.raises(ValueError, match=r"training\.lora_r: LoRA rank 32 is above engine\.max_lora_rank 16"):
        spec.check_experiment({}, {"training.lora_r": 32})
    # Other engines accept any temperature the schema does.
    engine_config.TransformersEngineSpec().check_experiment({"sampling.temperature": 5.0}, {"training.lora_r": 999})


def test_temperature_above_2_is_refused_at_experiment_load_for_vllm(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path, engine={"kind": "vllm"}, sampling={"temperature": 2.5, "top_p": 0.95})
    with pytest.raises(ExperimentError, match="vLLM accepts temperatures"):
        parse_experiment(data, "x.yaml")


def test_the_vllm_version_is_part_of_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: a cache entry written by one vLLM was a hit for another.
    spec = VLLMEngineSpec(kind="vllm")
    producers = {}
    for version in ("0.29.0", "0.33.0", None):
        monkeypatch.setattr(engine_config, "installed_vllm_version", lambda v=version: v)
        assert spec.version_data()["vllm_version"] == version
        producers[version] = spec.producer
    assert len(set(producers.values())) == 3
