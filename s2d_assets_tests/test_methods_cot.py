from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.methods import build_method, method_definition
from s2d_assets.methods.cot import ExemplarError
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets_tests.fakes import ScriptedEngine

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def test_zero_shot_prompts_and_the_extraction_step_sees_the_reasoning() -> None:
    reason, extract = method_definition("cot_zero_shot").steps
    assert reason.render(QUESTION, {}) == f"{QUESTION}\nLet's think step by step."
    assert extract.continues == "reason"
    assert extract.render(QUESTION, {"answer_format": "(a number)"}) == "Therefore, the answer (a number) is"

    def respond(request):  # type: ignore[no-untyped-def]
        content = request.messages[-1][1]
        if content.endswith("Let's think step by step."):
            return f"He has 3 + 4 = 7 apples (sample {request.sample_idx})."
        return "7" if "(sample 1)" in content else "seven"

    engine = ScriptedEngine(respond)
    chains = [Chain("q", QUESTION, 0, s) for s in range(2)]
    method = method_definition("cot_zero_shot")
    results = run_method(method, chains, engine, temperature=0.7, top_p=0.9, seed=0, answer_format="(a number)")
    assert [len(batch) for batch in engine.calls] == [2, 2]
    assert [r.output for r in results] == ["seven", "7"]
    # Step 2 of sample j continues sample j's own reasoning turn, ending with the task's cue.
    assert engine.calls[1][1].messages == (
        ("user", f"{QUESTION}\nLet's think step by step."),
        ("assistant", "He has 3 + 4 = 7 apples (sample 1).\nTherefore, the answer (a number) is"),
    )
    assert engine.calls[1][1].continuation and not engine.calls[0][1].continuation
    assert results[1].steps[1]["prompt"].startswith("He has 3 + 4 = 7 apples (sample 1).")
    assert results[1].steps[1]["continues"] == "reason"
    assert results[1].completion_tokens == sum(s["completion_tokens"] for s in results[1].steps)


def test_few_shot_renders_the_exemplar_file_literally(tmp_path: Path) -> None:
    path = tmp_path / "exemplars.jsonl"
    path.write_text(
        '{"question": "What is 2 + {2}?", "reasoning": "2 + 2 = 4.", "answer": "4"}\n'
        '{"question": "What is 5 - 1?", "reasoning": "5 - 1 = 4.", "answer": 4}\n'
    )
    method = build_method("cot_few_shot", exemplars=path)
    (step,) = method.steps
    assert step.render(QUESTION, {}) == (
        "Q: What is 2 + {2}?\nA: 2 + 2 = 4. The answer is 4.\n\n"
        "Q: What is 5 - 1?\nA: 5 - 1 = 4. The answer is 4.\n\n"
        f"Q: {QUESTION}\nA:"
    )
    assert method.fingerprint != build_method("cot_few_shot", exemplars=_one_exemplar(tmp_path)).fingerprint


def _one_exemplar(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text('{"question": "Q", "reasoning": "R", "answer": "A"}\n')
    return path


def test_few_shot_without_exemplars_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs an exemplar file"):
        build_method("cot_few_shot")
    with pytest.raises(ValueError, match="must be bound"):
        run_method(method_definition("cot_few_shot"), [Chain("q", "Q")], ScriptedEngine(lambda r: ""), 0.0, 1.0, 0)


def test_a_malformed_exemplar_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Q", "reasoning": "R", "answer": "A"}\n{"question": "Q2", "answer": "B"}\n')
    with pytest.raises(ExemplarError, match=r"bad.jsonl: line 2: missing or non-text field\(s\) \['reasoning'\]"):
        build_method("cot_few_shot", exemplars=path)


def test_the_shipped_exemplar_file_loads_from_a_project_relative_path() -> None:
    from s2d_assets.core.paths import resolve_path

    path = resolve_path("experiments/exemplars/arithmetic_cot.jsonl")
    prefix = build_method("cot_few_shot", exemplars=path).steps[0].render("Q?", {})
    assert prefix.count("The answer is ") == 3 and prefix.endswith("Q: Q?\nA:")
