from __future__ import annotations

from s2d_assets.distill.curate import (
    KEPT,
    NO_ANSWER,
    USC_NO_SELECTION,
    parse_selection,
    select_most_consistent,
    usc_decision,
    usc_prompt,
)
from s2d_assets.engines.base import GenerationRequest
from s2d_assets_tests.fakes import ScriptedEngine


def test_the_usc_prompt_lists_the_responses() -> None:
    assert usc_prompt("Who wrote Hamlet?", ["Shakespeare.", " William Shakespeare \n"]) == (
        "I have generated the following responses to the question: Who wrote Hamlet?\n\n"
        "Response 0: Shakespeare.\nResponse 1: William Shakespeare\n\n"
        "Evaluate these responses.\nSelect the most consistent response based on majority consensus.\n"
        'Start your answer with "The most consistent response is Response X" (without quotes).'
    )


def test_selection_parsing() -> None:
    assert parse_selection("The most consistent response is Response 2.", 3) == 2
    assert parse_selection("the most consistent response is: response 0", 3) == 0
    assert parse_selection("I pick Response 1 because it matches.", 3) == 1
    assert parse_selection("Response 1 and Response 2 agree", 3) is None
    assert parse_selection("The most consistent response is Response 7", 3) is None  # out of range
    assert parse_selection("none of them", 3) is None


def test_selection_becomes_the_kept_answer() -> None:
    answers = ["paris", None, "paris, france", "lyon"]
    kept = usc_decision(2, answers)
    assert kept.kept and kept.reason == KEPT and kept.answer == "paris, france" and kept.agreement == 0.25
    assert usc_decision(None, answers).reason == USC_NO_SELECTION
    assert usc_decision(1, answers).reason == NO_ANSWER


def test_one_greedy_call_per_input() -> None:
    def respond(request: GenerationRequest) -> str:
        return "The most consistent response is Response 1" if "Hamlet" in request.messages[-1][1] else "unsure"

    engine = ScriptedEngine(respond)
    items = [("Who wrote Hamlet?", ["a", "b"]), ("Capital of France?", ["c", "d", "e"])]
    assert select_most_consistent(engine, items, seed=0) == [1, None]
    assert len(engine.calls) == 1 and all(r.params.temperature == 0.0 for r in engine.requests)
