"""Truncation recorded end to end (engine, cache, steps, generations) and answer stages in the assistant's turn."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import torch

from s2d_assets import distill
from s2d_assets.config.experiment import ExperimentError, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.distill import StageContext
from s2d_assets.engines import CachedEngine, GenerationCache
from s2d_assets.engines.base import Completion, GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.methods import build_method, method_definition
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.fakes import ScriptedEngine

GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=3)
CUE = "Therefore, the answer (yes or no) is"
TURN = (("user", "Is the coin still heads up?"), ("assistant", f"Ann flips it once.\n{CUE}"))


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> TransformersEngine:
    return TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32")


def test_transformers_engine_says_length_at_the_budget_and_stop_on_a_stop_token(engine: TransformersEngine) -> None:
    prompts = ["Elon Musk", "Is the coin still heads up?", "Ann flips the coin.", "abc", "yes no"]
    cut = engine.generate([GenerationRequest.user(p, GREEDY) for p in prompts])
    assert {c.finish_reason for c in cut} <= {"stop", "length"}
    assert "length" in {c.finish_reason for c in cut}
    for completion in cut:  # "length" exactly when the budget was spent without a stop token
        assert (completion.finish_reason == "length") == (completion.completion_tokens == 3)
    # A model whose every token is a stop token stops at once: "stop", one token.
    stopping = TransformersEngine(engine.model, engine.tokenizer, "tiny")
    stopping.stop_ids = set(range(len(engine.tokenizer)))
    stopping._stop_tensor = torch.tensor(sorted(stopping.stop_ids))
    stopped = stopping.generate([GenerationRequest.user("Elon Musk", GREEDY)])
    assert [(c.finish_reason, c.completion_tokens) for c in stopped] == [("stop", 1)]


def test_a_continuation_renders_the_assistant_text_open(engine: TransformersEngine) -> None:
    # The tiny model's template is SmolLM2's ChatML: <|im_start|>role\n...<|im_end|>.
    continued = engine.render(GenerationRequest(TURN, GREEDY))
    assert continued.endswith(f"<|im_start|>assistant\nAnn flips it once.\n{CUE}")
    assert "<|im_end|>" not in continued.split("<|im_start|>assistant\n")[-1]
    fresh = engine.render(GenerationRequest.user("Is the coin still heads up?", GREEDY))
    assert fresh.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_cot_runs_end_to_end_on_the_tiny_model_and_a_cache_hit_keeps_finish_reason(
    engine: TransformersEngine, tmp_path: Path
) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    method = build_method("cot_zero_shot", max_new_tokens={"reason": 6, "extract": 3})

    def run() -> tuple[CachedEngine, list]:  # type: ignore[type-arg]
        cached = CachedEngine("tiny", lambda: engine, GenerationCache(warehouse), batch_size=8)
        chains = [Chain("a", "Is the coin still heads up?"), Chain("b", "Elon Musk")]
        return cached, run_method(method, chains, cached, 0.0, 1.0, 0, "tiny", answer_format="(yes or no)")

    first_engine, first = run()
    assert first_engine.stats.misses == 4
    for result in first:
        reason, extract = result.steps
        assert extract["continues"] == "reason"
        assert extract["prompt"] == f"{reason['output']}\n{CUE}"  # the cue continues the reasoning turn
        assert {reason["finish_reason"], extract["finish_reason"]} <= {"stop", "length"}
        expected = "length" if "length" in (reason["finish_reason"], extract["finish_reason"]) else "stop"
        assert result.finish_reason == expected
        assert result.completion_tokens == reason["completion_tokens"] + extract["completion_tokens"]
    again_engine, again = run()
    assert again_engine.stats.hits == 4 and again_engine.stats.misses == 0
    assert [[s["finish_reason"] for s in r.steps] for r in again] == [
        [s["finish_reason"] for s in r.steps] for r in first
    ]
    stored = warehouse.query("SELECT finish_reason FROM llm_cache")["finish_reason"].to_list()
    assert set(stored) <= {"stop", "length"} and len(stored) == 4


def test_a_stage_writes_finish_reason_into_generations(tiny_model_dir: Path, tmp_path: Path) -> None:
    experiment = parse_experiment(
        {
            "name": "trunc",
            "n_samples": 1,
            "model": {"source": "path", "path": str(tiny_model_dir)},
            "tasks": {"coin": {"kind": "coin_flip", "train_size": 2, "eval_size": 2, "name_pool": 50}},
            "methods": {"cot": {"kind": "cot_zero_shot"}},
        }
    )

    class Cut(ScriptedEngine):
        def generate(self, requests):  # type: ignore[no-untyped-def]
            out = super().generate(requests)  # the reasoning is cut at its budget, the answer stops
            return [
                Completion(c.text, c.prompt_tokens, c.completion_tokens, 0.0, "stop" if r.continuation else "length")
                for c, r in zip(out, requests, strict=True)
            ]

    seen: list[GenerationRequest] = []

    def respond(request: GenerationRequest) -> str:
        seen.append(request)
        return " yes." if request.continuation else "Ann flips the coin, so"

    ctx = StageContext(experiment, StatePaths(tmp_path / "s"), engine_factory=lambda d, f, a: Cut(respond))
    distill.write_inputs(ctx, "coin")
    distill.write_perturbed_inputs(ctx, "coin")
    distill.generate_system2(ctx, "coin", "cot", ctx.base_model())
    rows = ctx.warehouse.query("SELECT answer, finish_reason, steps FROM generations").to_dicts()
    assert rows and {(r["answer"], r["finish_reason"]) for r in rows} == {("yes", "length")}
    steps = json.loads(rows[0]["steps"])
    assert [s["finish_reason"] for s in steps] == ["length", "stop"]
    assert any(r.messages[-1] == ("assistant", f"Ann flips the coin, so\n{CUE}") for r in seen)  # the task's cue


def test_old_cache_rows_get_length_where_they_spent_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE llm_cache (cache_key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, request JSON NOT NULL, "
        "output VARCHAR NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER, seconds DOUBLE, "
        "created_at TIMESTAMP DEFAULT current_timestamp)"
    )
    for key, tokens in (("cut", 3), ("short", 2)):
        request = GenerationRequest.user(key, GREEDY).request_json()
        con.execute("INSERT INTO llm_cache VALUES (?, 'm', ?, 'x', 1, ?, 0.0, now())", [key, request, tokens])
    con.close()
    found = GenerationCache(Warehouse(path)).lookup(["cut", "short"])
    assert (found["cut"].finish_reason, found["short"].finish_reason) == ("length", None)


def test_cue_overrides_accept_answer_format_and_change_the_fingerprint() -> None:
    base = method_definition("cot_zero_shot")
    assert base.template_problems("extract", "So the answer {answer_format} is") == []
    assert base.template_problems("extract", "So the answer is") == []  # the continued turn carries the input
    assert base.template_problems("reason", "{answer_format} Think.") != []  # {question} is still required
    edited = base.with_overrides({"extract": "So the answer {answer_format} is"}, {})
    assert edited.fingerprint != base.fingerprint
    assert method_definition("rar_1step").needs_continuation and not method_definition("system1").needs_continuation


def test_openai_compat_without_an_assistant_prefix_is_refused_at_load(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    server = {"kind": "openai_compat", "base_url": "http://127.0.0.1:8080/v1", "model": "m"}
    with pytest.raises(ExperimentError, match=r"methods\.rar_1step: .*'openai_compat'.*assistant_prefix") as error:
        parse_experiment({**data, "engine": server}, "x.yaml")
    assert "\n" not in str(error.value)
    parse_experiment({**data, "engine": {**server, "assistant_prefix": "prefill"}}, "x.yaml")
    only_s2a = {**data, "methods": {"s2a": {"kind": "s2a"}}, "engine": server}
    parse_experiment(only_s2a, "x.yaml")  # no continuation needed: accepted


def test_openai_compat_bodies_continue_the_assistant_message() -> None:
    from s2d_assets.config.engine import OpenAICompatEngineSpec
    from s2d_assets.engines.openai_compat import chat_body

    spec = OpenAICompatEngineSpec(kind="openai_compat", base_url="http://x/v1", model="m")
    request = GenerationRequest(TURN, GREEDY)
    vllm_serve = chat_body(spec.model_copy(update={"assistant_prefix": "continue_final_message"}), request, 1)
    assert (vllm_serve["continue_final_message"], vllm_serve["add_generation_prompt"]) == (True, False)
    assert vllm_serve["messages"][-1] == {"role": "assistant", "content": TURN[1][1]}
    llama = chat_body(spec.model_copy(update={"assistant_prefix": "prefill"}), request, 1)
    assert "continue_final_message" not in llama and llama["messages"][-1]["role"] == "assistant"
    assert "continue_final_message" not in chat_body(spec, GenerationRequest.user("q", GREEDY), 1)
    with pytest.raises(ValueError, match="assistant_prefix is 'none'"):
        chat_body(spec, request, 1)
