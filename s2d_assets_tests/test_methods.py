from __future__ import annotations

import pytest

from s2d_assets.methods import SYSTEM1, MethodDefinition, Step, method_definition
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets_tests.fakes import ScriptedEngine

QUESTION = 'Take the last letters of the words in "Elon Musk" and concatenate them.'


def test_rar_one_step_prompt_is_the_papers() -> None:
    step, extract = method_definition("rar_1step").steps
    assert step.render(QUESTION, {}) == f'"{QUESTION}"\nRephrase and expand the question, and respond.'
    assert (extract.continues, extract.template) == ("respond", "Therefore, the answer {answer_format} is")


def test_rar_two_step_prompts_are_the_papers() -> None:
    rephrase, respond, extract = method_definition("rar_2step").steps
    assert extract.continues == "respond"
    assert rephrase.render(QUESTION, {}) == (
        f'"{QUESTION}"\nGiven the above question, rephrase and expand it to help you do better answering. '
        "Maintain all information in the original question."
    )
    assert respond.render(QUESTION, {"rephrase": "R"}) == (
        f"(original) {QUESTION}\n(rephrased) R\n"
        "Use your answer for the rephrased question to answer the original question."
    )


def test_step_two_sees_the_same_samples_step_one_output() -> None:
    def respond(request):  # type: ignore[no-untyped-def]
        content = request.messages[-1][1]
        if request.continuation:  # the answer stage, in the assistant's turn after the response
            return "no" if content.startswith("answer from rephrased#1\n") else "yes"
        if content.startswith('"'):
            return f"rephrased#{request.sample_idx}"
        return "answer from " + content.split("(rephrased) ")[1].split("\n")[0]

    engine = ScriptedEngine(respond)
    chains = [Chain("a", "Q1", 0, s) for s in range(3)] + [Chain("b", "Q2", 0, s) for s in range(3)]
    results = run_method(method_definition("rar_2step"), chains, engine, temperature=0.7, top_p=0.9, seed=0)
    # One engine call per step, each carrying every chain.
    assert [len(batch) for batch in engine.calls] == [6, 6, 6]
    for result in results:
        assert [s["name"] for s in result.steps] == ["rephrase", "respond", "extract"]
        assert result.steps[1]["output"] == f"answer from rephrased#{result.chain.sample_idx}"
        assert result.output == ("no" if result.chain.sample_idx == 1 else "yes")
        assert result.completion_tokens == sum(s["completion_tokens"] for s in result.steps)
    # The answer stage continues the respond turn: (user: respond's prompt), (assistant: its output + cue).
    user, assistant = engine.calls[2][1].messages
    assert user == engine.calls[1][1].messages[0]
    assert assistant == ("assistant", "answer from rephrased#1\nTherefore, the answer (in a few words) is")
    # Samples of one prompt get distinct seeds; the same chain gets the same seed on a re-run.
    seeds = {r.seed for r in engine.calls[0][:3]}
    assert len(seeds) == 3
    again = ScriptedEngine(respond)
    run_method(method_definition("rar_2step"), chains, again, temperature=0.7, top_p=0.9, seed=0)
    assert [r.seed for r in again.requests] == [r.seed for r in engine.requests]


def test_overrides_change_the_fingerprint_of_that_method_only() -> None:
    base = method_definition("rar_1step")
    edited = base.with_overrides({"respond": '"{question}"\nThink, then respond.'}, {})
    assert edited.fingerprint != base.fingerprint
    assert base.with_overrides({}, {}).fingerprint == base.fingerprint
    assert base.with_overrides({}, {"respond": 12}).fingerprint != base.fingerprint
    assert SYSTEM1.steps[0].render("Q?", {}).startswith("Q?\n")


def test_a_step_that_uses_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="uses \\['rephrase'\\]"):
        MethodDefinition("broken", "", (Step("respond", "{question} {rephrase}", 8),))
