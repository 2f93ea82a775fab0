"""Constrained final answers (``answer: constrained``): the decode, the request mapping, the keys, the refusals."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config.engine import OpenAICompatEngineSpec
from s2d_assets.config.experiment import ExperimentError, parse_experiment
from s2d_assets.config.tasks import CoinFlipSpec, FactualQASpec, Gsm8kSpec, LastLetterSpec, SycophancySpec
from s2d_assets.core.answer_set import CONSTRAINED, AnswerSet
from s2d_assets.distill.plan import evaluation_version, s2_generation_version, system1_version
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.engines.openai_compat import OpenAICompatEngine
from s2d_assets.methods import build_method, system1_for
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.tasks import build_task
from s2d_assets.tasks.answers import NUMBER_ANSWER
from s2d_assets.tasks.base import answer_set
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.openai_fake_server import FakeServer, Reply, completion, fake_servers

pytestmark = pytest.mark.timeout(120)

SAMPLED = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)
GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=12)
SIZES = {"train_size": 4, "eval_size": 4}
SETS = {
    "yes/no": AnswerSet.of("yes", "no"),
    "options": AnswerSet.of("(A)", "(B)"),
    "letters": AnswerSet(regex="[a-z]{3}"),
    "number": NUMBER_ANSWER,
}


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir: Path) -> TransformersEngine:
    return TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32", max_batch=16)


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_tiny_model_always_answers_inside_the_answer_set(tiny_engine: TransformersEngine, name: str) -> None:
    # A random model writes anything when free; constrained, every sample (greedy or sampled) is in the set.
    answers = SETS[name]
    requests = [
        GenerationRequest.user(f"Question {i}?", SAMPLED if i % 2 else GREEDY, sample_idx=i, seed=i, answer_set=answers)
        for i in range(24)
    ]
    free = [GenerationRequest.user(f"Question {i}?", SAMPLED, sample_idx=i, seed=i) for i in range(4)]
    completions = tiny_engine.generate(requests + free)  # constrained and free rows share decode batches
    assert all(answers.matches(c.text) for c in completions[:24]), [c.text for c in completions[:24]]
    assert all(c.completion_tokens < 12 for c in completions[:24]) or name == "number"  # it ended with EOS
    assert not all(answers.matches(c.text) for c in completions[24:])  # the free rows were not masked


def test_a_method_constrains_only_its_answer_step(tiny_engine: TransformersEngine) -> None:
    method = build_method("cot_zero_shot", max_new_tokens={"reason": 6, "extract": 6}).with_answer(CONSTRAINED)
    chains = [Chain(f"i{k}", f"Is coin {k} heads up?", answer_set=SETS["yes/no"]) for k in range(4)]
    results = run_method(method, chains, tiny_engine, 0.0, 1.0, seed=0)
    assert all(r.output in ("yes", "no") for r in results)
    assert not all(r.steps[0]["output"] in ("yes", "no") for r in results)  # the reasoning stayed free


def test_each_task_parses_its_own_constrained_answers_back() -> None:
    cases = [
        (CoinFlipSpec(kind="coin_flip", **SIZES), {}, ["yes", "no"]),
        (
            LastLetterSpec(kind="last_letter", n_words=2, **SIZES),
            {"n_words": 2, "words": ["Elon", "Musk"]},
            ["nk", "ab"],
        ),
        (FactualQASpec(kind="factual_qa", **SIZES), {"choices": ["true", "false"]}, ["true", "false"]),
        (SycophancySpec(kind="sycophancy", **SIZES), {"options": {"A": "Agree", "B": "Disagree"}}, ["(A)", "(B)"]),
    ]
    for spec, meta, examples in cases:
        task = build_task(spec)
        declared = answer_set(task, meta)
        assert declared is not None
        for text in examples:
            assert declared.matches(text), (spec.kind, text)
            assert task.parse_answer(text, meta) == text, (spec.kind, text)
    gsm8k = build_task(Gsm8kSpec(kind="gsm8k", **SIZES))
    assert answer_set(gsm8k, {}) == NUMBER_ANSWER and gsm8k.parse_answer("-12.5", {}) == "-12.5"
    assert answer_set(build_task(FactualQASpec(kind="factual_qa", source="fixture", **SIZES)), {}) is None  # free text


def test_the_mode_is_in_the_cache_key_and_the_code_versions(tiny_model_dir: Path) -> None:
    free = GenerationRequest.user("q", GREEDY)
    constrained = GenerationRequest.user("q", GREEDY, answer_set=SETS["yes/no"])
    assert free.cache_key("m") != constrained.cache_key("m")
    assert "answer_set" not in free.as_json()  # free keys are the ones from before the option existed
    base = tiny_experiment_data(tiny_model_dir)
    experiment = parse_experiment(base)
    constrained_exp = parse_experiment({**base, "methods": {"cot": {"kind": "cot_zero_shot", "answer": "constrained"}}})
    free_exp = parse_experiment({**base, "methods": {"cot": {"kind": "cot_zero_shot"}}})
    free_method = build_method("cot_zero_shot")
    assert s2_generation_version(free_exp, free_method) != s2_generation_version(
        constrained_exp, free_method.with_answer(CONSTRAINED)
    )
    s1 = parse_experiment({**base, "evaluation": {"system1_answer": "constrained"}})
    assert system1_version(s1) != system1_version(experiment)
    assert evaluation_version(s1, free_method) != evaluation_version(experiment, free_method)
    assert experiment.fingerprint == parse_experiment({**base, "evaluation": {"system1_answer": "free"}}).fingerprint
    assert system1_for(False, CONSTRAINED).fingerprint != system1_for(False).fingerprint


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ExperimentError) as error:
        parse_experiment(data, "exp.yaml")
    message = str(error.value)
    assert "\n" not in message and message.startswith("exp.yaml")
    return message


def test_what_cannot_constrain_is_refused_at_load(tiny_model_dir: Path) -> None:
    base = tiny_experiment_data(tiny_model_dir)
    # (the tiny experiment's RaR answers in the assistant's own turn: the server continues it)
    server = {"kind": "openai_compat", "base_url": "http://127.0.0.1:9/v1", "model": "m", "assistant_prefix": "prefill"}
    s1 = {"system1_answer": "constrained"}
    message = refusal({**base, "engine": server, "evaluation": s1})
    assert "evaluation.system1_answer" in message and "engine 'openai_compat'" in message
    assert "engine.constrained_answers" in message
    parse_experiment({**base, "engine": {**server, "constrained_answers": "llama_cpp_grammar"}, "evaluation": s1})
    message = refusal({**base, "methods": {"s2a": {"kind": "s2a", "answer": "constrained"}}})
    assert "methods.s2a.answer" in message and "s2a" in message
    # RaR answers in its own extraction stage, so it can be constrained.
    parse_experiment({**base, "methods": {"rar": {"kind": "rar_1step", "answer": "constrained"}}})
    free_text = {"qa": {"kind": "factual_qa", "source": "fixture"}}
    assert "qa" in refusal({**base, "tasks": free_text, "evaluation": s1})


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    with fake_servers() as start:
        yield start


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("llama_cpp_grammar", {"grammar": 'root ::= "yes" | "no"'}),
        ("vllm_structured_outputs", {"structured_outputs": {"choice": ["yes", "no"]}}),
    ],
)
def test_a_server_gets_the_answer_set_in_its_own_parameter(
    serve: Callable[..., FakeServer], mode: str, expected: dict[str, Any]
) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        return completion(body)

    fake = serve(script)
    spec = OpenAICompatEngineSpec(kind="openai_compat", base_url=fake.url, model="m", constrained_answers=mode)
    engine = OpenAICompatEngine(spec, "server")
    engine.generate(
        [GenerationRequest.user("q", GREEDY, answer_set=SETS["yes/no"]), GenerationRequest.user("q", GREEDY)]
    )
    constrained, free = sorted(fake.bodies, key=lambda body: len(body))[::-1]
    assert {key: constrained[key] for key in expected} == expected
    assert not set(expected) & set(free)


def test_a_regex_answer_set_becomes_a_grammar_llama_cpp_reads() -> None:
    grammar = AnswerSet(regex="[a-z]{2}").ebnf()
    assert grammar.startswith("root ::=") and re.search(r"\[a-z\]", grammar)
