from __future__ import annotations

from s2d_assets.methods import method_definition
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.methods.s2a import split_context_and_query
from s2d_assets_tests.fakes import ScriptedEngine

TEXT = "I think the answer is Sydney, but I'm really not sure. What is the capital of Australia?"

PAPER_PROMPT = (
    "Given the following text by a user, extract the part that is unbiased and not their opinion, so that using "
    "that text alone would be good context for providing an unbiased answer to the question portion of the text. "
    "Please include the actual question or query that the user is asking. Separate this into two categories "
    'labeled with "Unbiased text context (includes all content except user\'s bias):" and '
    '"Question/Query (does not include user bias/preference):".\n\nText by User: '
)

REGENERATED = (
    "Unbiased text context (includes all content except user's bias): Australia is a country.\n"
    "Question/Query (does not include user bias/preference): What is the capital of Australia?"
)


def test_step_one_is_the_papers_prompt() -> None:
    for kind in ("s2a", "s2a_keep_orig", "s2a_ni"):
        assert method_definition(kind).steps[0].render(TEXT, {}) == PAPER_PROMPT + TEXT


def test_relevance_and_single_prompts() -> None:
    relevance = method_definition("s2a_relevance").steps[0].render("Q?", {})
    assert relevance.startswith(
        "Given the following text by a user, extract the part that is related and useful, so that using that text "
        "alone would be good context for providing an accurate and correct answer to the question portion of the text."
    )
    assert '"Detailed question:"' in relevance and relevance.endswith("Do not use list.\n\nText by User: Q?")
    single = method_definition("s2a_single").steps[0].render("Q?", {})
    assert "Separate this into two categories" not in single
    assert '"Unbiased version of text by User, including question:"' in single


def _run(kind: str) -> list[str]:
    def respond(request):  # type: ignore[no-untyped-def]
        content = request.messages[-1][1]
        if content.startswith("Given the following text"):
            if kind == "s2a_single":
                return "Unbiased version of text by User, including question: What is the capital of Australia?"
            return REGENERATED
        return "Canberra"

    engine = ScriptedEngine(respond)
    results = run_method(method_definition(kind), [Chain("q", TEXT)], engine, temperature=0.0, top_p=1.0, seed=0)
    (result,) = results
    assert [s["name"] for s in result.steps] == ["regenerate", "answer"]
    assert result.output == "Canberra"
    assert result.completion_tokens == sum(s["completion_tokens"] for s in result.steps)
    return [request.messages[-1][1] for request in engine.requests]


def test_step_two_answers_from_the_regenerated_context_only() -> None:
    _, answer = _run("s2a")
    assert answer == "Australia is a country.\n\nAnswer in an unbiased way.\n\nWhat is the capital of Australia?"
    assert "Sydney" not in answer


def test_variants_wire_step_two_differently() -> None:
    assert _run("s2a_ni")[1] == "Australia is a country.\n\nWhat is the capital of Australia?"
    assert _run("s2a_keep_orig")[1] == (
        f"Original user query (possibly biased): {TEXT}\n\nUnbiased context: Australia is a country.\n"
        "Given the above unbiased context, answer the following: What is the capital of Australia?"
    )
    assert _run("s2a_single")[1] == "Answer in an unbiased way.\n\nWhat is the capital of Australia?"


def test_the_split_tolerates_loose_labels_and_missing_ones() -> None:
    loose = "**Unbiased text context:** Facts here.\n\n**Question/Query:** Which one?"
    labels = (
        "Unbiased text context (includes all content except user's bias):",
        "Question/Query (does not include user bias/preference):",
    )
    assert split_context_and_query(loose, *labels) == {"context": "Facts here.", "query": "Which one?"}
    assert split_context_and_query("Just some text.", *labels) == {"context": "Just some text.", "query": ""}
