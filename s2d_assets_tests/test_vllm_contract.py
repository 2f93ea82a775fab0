"""The vLLM engine against a stand-in ``vllm`` that behaves like vLLM 0.29.0 (``fake_vllm/``).

The engine is built by the pipeline's factory (``build_engine``) and runs its real code path; only
``vllm`` is the stand-in and ``torch.cuda.is_available`` says yes. Each test would have caught one
way the GPU path broke.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from s2d_assets.config.engine import VLLMEngineSpec, installed_vllm_version
from s2d_assets.engines import build_engine
from s2d_assets.engines.base import Completion, GenerationRequest, SamplingParams, derive_seed
from s2d_assets.engines.vllm_engine import VLLMEngine
from s2d_assets.engines.vllm_registry import SHARED

pytestmark = pytest.mark.timeout(60)

STAND_IN = Path(__file__).parent / "fake_vllm"
SAMPLED = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=64)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=64)
BASE = Path("/models/base")


def _forget_vllm() -> None:
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]
    installed_vllm_version.cache_clear()


@pytest.fixture
def vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``import vllm`` finds the stand-in; the process's shared LLM starts and ends empty."""
    SHARED.release()
    _forget_vllm()
    monkeypatch.syspath_prepend(str(STAND_IN))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    import vllm as stand_in
    from vllm import _stand_in

    assert Path(stand_in.__file__).is_relative_to(STAND_IN)
    _stand_in.reset()
    yield stand_in
    SHARED.release()
    _forget_vllm()


def state(vllm: ModuleType) -> Any:
    """The stand-in's record of engines and calls."""
    return sys.modules["vllm._stand_in"].STATE


def samples(prompt: str, params: SamplingParams, n: int) -> list[GenerationRequest]:
    return [GenerationRequest.user(prompt, params, sample_idx=k, seed=derive_seed(7, k, prompt)) for k in range(n)]


def texts(completions: list[Completion]) -> list[tuple[str, int, int, str | None]]:
    """What a completion says, without its timing."""
    return [(c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) for c in completions]


def adapter(directory: Path, r: int = 16) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": 2 * r, "bias": "none"}))
    return directory


def engine(spec: VLLMEngineSpec, fingerprint: str = "ba5eba5e:vllm:1", adapter_dir: Path | None = None) -> VLLMEngine:
    built = build_engine(spec, BASE, fingerprint, adapter_dir)
    assert isinstance(built, VLLMEngine)
    return built


SPEC = VLLMEngineSpec(kind="vllm", max_lora_rank=16)


def test_the_stand_in_refuses_what_vllm_refuses(vllm: ModuleType, tmp_path: Path) -> None:
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError, match="n must be 1 when using greedy sampling"):
        vllm.SamplingParams(n=8, temperature=0.0, seed=1)
    with pytest.raises(VLLMValidationError, match=r"temperature must be in \[0, 2\]"):
        vllm.SamplingParams(temperature=2.5)
    with pytest.raises(TypeError):
        vllm.SamplingParams(max_new_tokens=3)
    llm = vllm.LLM(model="m", enable_lora=False)
    with pytest.raises(ValueError, match="less than desired GPU memory utilization"):
        vllm.LLM(model="other", gpu_memory_utilization=0.9)
    from vllm.lora.request import LoRARequest

    with pytest.raises(ValueError, match="LoRA is not enabled"):
        llm.chat([{"role": "user", "content": "q"}], lora_request=LoRARequest("a", 1, str(adapter(tmp_path / "a"))))
    # Child k of a seeded n > 1 request samples with seed + k, as vLLM's ParentRequest does.
    grouped = llm.chat([{"role": "user", "content": "q"}], vllm.SamplingParams(n=3, seed=100, temperature=0.7))
    alone = llm.chat([{"role": "user", "content": "q"}], vllm.SamplingParams(seed=102, temperature=0.7))
    assert grouped[0].outputs[2].token_ids == alone[0].outputs[0].token_ids
    llm.llm_engine.engine_core.shutdown()
    vllm.LLM(model="other", gpu_memory_utilization=0.9)  # the memory is back


def test_greedy_samples_are_one_request_whose_completion_every_sample_gets(vllm: ModuleType) -> None:
    # Before: one request with n = 8 and temperature 0, which vLLM refuses.
    requests = samples("q", GREEDY, 8)
    completions = engine(SPEC).generate(requests)
    (call,) = state(vllm).calls
    assert [p["n"] for p in call["params"]] == [1]
    assert len({c.text for c in completions}) == 1 and len(completions) == 8


def test_a_sampled_text_depends_on_its_own_seed_only(vllm: ModuleType) -> None:
    # Before: sample k ran with first.seed + k, so regenerating one missing sample gave another text.
    requests = samples("q", SAMPLED, 4) + samples("r", SAMPLED, 2)
    llm_engine = engine(SPEC)
    batch = llm_engine.generate(requests)
    for index in (3, 5):  # one cache miss at a time, in a different batch
        assert texts(llm_engine.generate([requests[index]])) == texts([batch[index]])
    assert texts(llm_engine.generate(requests[::-1])) == texts(batch[::-1])
    calls = state(vllm).calls
    assert [p["seed"] for p in calls[0]["params"]] == [r.seed for r in requests]
    assert all(p["n"] == 1 for call in calls for p in call["params"])
    assert len({c.text for c in batch}) == len(batch)  # the samples differ


def test_completion_tokens_count_eos_and_truncation_is_recorded(vllm: ModuleType) -> None:
    # Before: finish_reason was ignored, so a completion cut at max_tokens looked finished.
    llm_engine = engine(SPEC)
    finished = llm_engine.generate(samples("q", SAMPLED, 6))
    assert {c.finish_reason for c in finished} == {"stop"}
    for completion in finished:  # the stand-in's token ids are the text's words and EOS
        assert completion.completion_tokens == len(completion.text.split()) + 1
    short = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=4)
    cut = llm_engine.generate(samples("q", short, 6))
    truncated = [c for c in cut if c.finish_reason == "length"]
    assert truncated and all(c.completion_tokens == 4 for c in truncated)
    assert llm_engine.stats.truncated == len(truncated)
    assert llm_engine.stats.as_metadata() == {"vllm_samples": 12, "vllm_requests": 12, "vllm_truncated": len(truncated)}


def test_a_continuation_reaches_llm_chat_with_continue_final_message(vllm: ModuleType) -> None:
    # Before: every chat opened a new assistant turn, so the answer cue was closed and answered afresh.
    turn = (("user", "q"), ("assistant", "reasoning\nTherefore, the answer (yes or no) is"))
    continued = GenerationRequest(turn, GREEDY)
    fresh = GenerationRequest.user("q", GREEDY)
    completions = engine(SPEC).generate([fresh, continued, fresh])
    calls = state(vllm).calls
    assert [(c["add_generation_prompt"], c["continue_final_message"]) for c in calls] == [(True, False), (False, True)]
    assert calls[1]["conversations"] == [[{"role": role, "content": text} for role, text in turn]]
    assert len(completions) == 3 and completions[0] == completions[2] != completions[1]


def test_system2_and_distilled_engines_share_one_llm(vllm: ModuleType, tmp_path: Path) -> None:
    # Before: the evaluation built a second LLM for the distilled model on the same GPUs.
    ckpt = adapter(tmp_path / "checkpoints" / "rar_1step")
    system2 = engine(SPEC, "ba5eba5e:vllm:1")
    distilled = engine(SPEC, "c0ffee1234:vllm:1", ckpt)
    requests = samples("q", SAMPLED, 2)
    base_out = system2.generate(requests)
    adapted = distilled.generate(requests)
    assert texts(base_out) != texts(adapted)  # the adapter is applied
    st = state(vllm)
    assert len(st.constructed) == 1 and st.max_alive == 1
    assert st.constructed[0]["enable_lora"] is True and st.constructed[0]["max_lora_rank"] == 16
    assert [call["lora"] for call in st.calls] == [[None, None], ["c0ffee1234:vllm:1", "c0ffee1234:vllm:1"]]
    assert texts(system2.generate(requests)) == texts(base_out)  # the base model is unchanged by the adapter


def test_another_model_replaces_the_llm_instead_of_starting_a_second(vllm: ModuleType, tmp_path: Path) -> None:
    # Merged or fully fine-tuned weights are another model: the live LLM is shut down first.
    system2 = engine(SPEC)
    requests = samples("q", SAMPLED, 2)
    base_out = system2.generate(requests)
    full = build_engine(SPEC, tmp_path / "full-checkpoint", "f011f011:vllm:1")
    assert isinstance(full, VLLMEngine)
    full.generate(requests)
    assert texts(system2.generate(requests)) == texts(base_out)  # rebuilt on demand, same texts
    st = state(vllm)
    assert [c["model"] for c in st.constructed] == [str(BASE), str(tmp_path / "full-checkpoint"), str(BASE)]
    assert st.max_alive == 1


def test_an_adapter_above_max_lora_rank_is_refused_before_vllm_starts(vllm: ModuleType, tmp_path: Path) -> None:
    big = adapter(tmp_path / "checkpoints" / "big", r=32)
    with pytest.raises(ValueError, match=rf"LoRA adapter {big}: .*r=32 is above engine.max_lora_rank=16"):
        engine(SPEC, "b16b16b16:vllm:1", big)
    assert state(vllm).constructed == []


def test_a_temperature_vllm_refuses_is_refused_before_the_call(vllm: ModuleType) -> None:
    hot = SamplingParams(temperature=2.5, top_p=1.0, max_new_tokens=8)
    with pytest.raises(ValueError, match=r"vLLM accepts temperatures in \[0, 2\], got \[2\.5\]"):
        engine(SPEC).generate(samples("q", hot, 2))
    assert state(vllm).calls == []


def test_the_producer_reads_the_installed_vllm_without_importing_it(vllm: ModuleType) -> None:
    _forget_vllm()
    assert installed_vllm_version() == "0.29.0"  # the stand-in's metadata
    assert "vllm" not in sys.modules
    assert SPEC.version_data()["vllm_version"] == "0.29.0"


def test_a_constrained_answer_goes_out_as_structured_outputs(vllm: ModuleType) -> None:
    # Without the mapping, vLLM would decode freely and the answer set would be lost.
    from s2d_assets.core.answer_set import AnswerSet

    yes_no, letters = AnswerSet.of("yes", "no"), AnswerSet(regex="[a-z]{2}")
    requests = [
        GenerationRequest.user("q", SAMPLED, sample_idx=k, seed=derive_seed(7, k), answer_set=yes_no) for k in range(6)
    ]
    requests += [GenerationRequest.user("q", GREEDY, answer_set=letters), GenerationRequest.user("q", GREEDY)]
    completions = engine(SPEC).generate(requests)
    (call,) = state(vllm).calls
    constraints = [p["structured_outputs"] for p in call["params"]]
    assert [(c.choice, c.regex) for c in constraints[:6]] == [(["yes", "no"], None)] * 6
    assert (constraints[6].choice, constraints[6].regex) == (None, "[a-z]{2}")
    assert constraints[7] is None  # the free request: a greedy twin with another answer set is not merged
    assert {c.text for c in completions[:6]} <= {"yes", "no"} and all(c.finish_reason == "stop" for c in completions)
