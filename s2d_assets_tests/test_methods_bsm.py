from __future__ import annotations

import pytest

from s2d_assets.engines.base import GenerationRequest
from s2d_assets.methods import method_definition
from s2d_assets.methods.bsm import FALLBACK_CRITERION, both_orders_verdict, parse_criteria, parse_scores
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.tasks.judging import POSITION_INCONSISTENT, pair_prompt, parse_pair
from s2d_assets_tests.fakes import ScriptedEngine

PROMPT = pair_prompt("Name a prime.", "7 is prime.", "9 is prime.")


def test_the_pair_prompt_round_trips() -> None:
    assert parse_pair(PROMPT) == ("Name a prime.", "7 is prime.", "9 is prime.")
    with pytest.raises(ValueError, match="not a pairwise prompt"):
        parse_pair("just a question")


def test_branch_prompt_and_criteria_parsing() -> None:
    branch = method_definition("bsm").steps[1]
    rendered = branch.template.format(user_question="Name a prime.")
    assert "a list of up to five factors that one should consider such as helpfulness, relevance, accuracy" in rendered
    assert rendered.endswith("User Question: Name a prime.\n\nEvaluation Plan:")
    plan = "1. Correctness - is it prime?\n2) Clarity\n- Brevity\n\n* Tone\n5. Depth\n6. Extra"
    assert parse_criteria(plan) == {"criteria": ["Correctness - is it prime?", "Clarity", "Brevity", "Tone", "Depth"]}
    assert parse_criteria("") == {"criteria": [FALLBACK_CRITERION]}
    assert parse_scores("Assistant A: 4/5\nAssistant B: 2") == {"score_first": "4", "score_second": "2"}
    assert parse_scores("Both are fine, 10 out of 10") == {"score_first": "", "score_second": ""}


def _judge(scores_when_7_first: tuple[int, int], scores_when_9_first: tuple[int, int]) -> tuple[ScriptedEngine, list]:  # type: ignore[type-arg]
    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("We want to evaluate"):
            return "1. Correctness\n2. Clarity"
        first_shown = content.split("[The Start of Assistant A's Answer]\n", 1)[1].split("\n", 1)[0]
        a, b = scores_when_7_first if first_shown == "7 is prime." else scores_when_9_first
        return f"{a}\n{b}"

    engine = ScriptedEngine(respond)
    results = run_method(method_definition("bsm"), [Chain("p", PROMPT)], engine, 0.0, 1.0, 0)
    return engine, results


def test_solve_fans_out_over_criteria_in_both_orders_and_merge_sums() -> None:
    engine, (result,) = _judge((5, 1), (2, 4))  # 7 wins in both orders
    # branch: 1 call; solve_ab and solve_ba: one call per criterion each.
    assert [len(batch) for batch in engine.calls] == [1, 2, 2]
    solve_ab = [s for s in result.steps if s["name"] == "solve_ab"]
    assert [s["item"] for s in solve_ab] == [0, 1]
    assert "[Evaluation Criterion]\nClarity\n\n[End of Evaluation Criterion]" in solve_ab[1]["prompt"]
    solve_ba = next(s for s in result.steps if s["name"] == "solve_ba")
    assert solve_ba["prompt"].index("9 is prime.") < solve_ba["prompt"].index("7 is prime.")
    assert result.output == "A"
    assert result.fields["verdict_ab"] == "A" and result.fields["verdict_ba"] == "A"
    assert result.fields["totals"] == "AB order: A=10 B=2; BA order: A=8 B=4"
    assert result.completion_tokens == sum(s["completion_tokens"] for s in result.steps)


def test_a_position_biased_judge_gives_no_verdict() -> None:
    # Whatever is shown first wins: the orders disagree once mapped back, which is not a tie.
    _, (result,) = _judge((5, 1), (5, 1))
    assert (result.fields["verdict_ab"], result.fields["verdict_ba"]) == ("A", "B")
    assert result.output == POSITION_INCONSISTENT
    assert both_orders_verdict("B", "B") == "B" and both_orders_verdict("tie", "tie") == "tie"
    assert both_orders_verdict("tie", "A") == POSITION_INCONSISTENT
