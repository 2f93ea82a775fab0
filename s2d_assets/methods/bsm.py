"""Branch-Solve-Merge for pairwise judging (Saha et al., 2023, arXiv 2310.15123).

The input is the judging task's pair prompt (``tasks/judging.py``'s ``pair_prompt``): a user question
and two responses.
- split (no LLM call): read the question and the two responses out of the prompt;
- branch: propose up to five evaluation criteria from the question;
- solve: for every criterion, score both responses 1-5 — once with the responses in the
  given order (``solve_ab``) and once swapped (``solve_ba``): a fan-out over the criteria;
- merge (no LLM call, as in the paper: the scores summed over the criteria): each order names a
  winner (or a tie), the swapped order's verdict is mapped back, and the final verdict is that
  winner when both orders agree. When they disagree the judgment is ``position_inconsistent``: no
  verdict. Curation discards such a judgment (reason ``position_inconsistent``) instead of
  reading it as a tie, and evaluation counts them.
"""

from __future__ import annotations

import re

from s2d_assets.methods.base import Compute, Fields, FieldValue, MethodDefinition, Parser, Step
from s2d_assets.tasks.judging import POSITION_INCONSISTENT, parse_pair

VERDICTS = ("A", "B", "tie")

BRANCH_TEMPLATE = (
    "We want to evaluate the quality of the responses provided by two AI assistants to the user question "
    "displayed below. Your task is to propose an evaluation plan that can be executed to compare the two "
    "responses. The evaluation plan should consist of a list of up to five factors that one should consider "
    "such as helpfulness, relevance, accuracy, etc. In each line, write an evaluation criterion along with a "
    "short description of how we should evaluate that criterion.\n\n"
    "User Question: {user_question}\n\nEvaluation Plan:"
)
_SOLVE_HEAD = (
    "You are given a user question and two responses provided by two AI assistants. Your task is to evaluate "
    "and score the quality of the responses based on a single evaluation criterion displayed below. Make sure "
    "to evaluate only based on the criterion specified and none other. In the first line, provide a score "
    "between 1 and 5 for Assistant A's response. In the second line, provide a score between 1 and 5 for "
    "Assistant B's response.\n\n[User Question]\n{user_question}\n\n"
)
_SOLVE_TAIL = "\n\n[Evaluation Criterion]\n{item}\n\n[End of Evaluation Criterion]"
_ANSWERS = (
    "[The Start of Assistant A's Answer]\n{%s}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{%s}\n[The End of Assistant B's Answer]"
)
SOLVE_AB_TEMPLATE = _SOLVE_HEAD + _ANSWERS % ("response_a", "response_b") + _SOLVE_TAIL
SOLVE_BA_TEMPLATE = _SOLVE_HEAD + _ANSWERS % ("response_b", "response_a") + _SOLVE_TAIL

MAX_CRITERIA = 5
FALLBACK_CRITERION = "Overall quality: how helpful, relevant and accurate the response is."
_BULLET = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_SCORE = re.compile(r"(?<![\d.])([1-5])(?:\s*/\s*5)?(?![\d.])")


def split_pair(fields: Fields) -> dict[str, FieldValue]:
    question, answer_a, answer_b = parse_pair(str(fields["question"]))
    return {"split": question, "user_question": question, "response_a": answer_a, "response_b": answer_b}


def parse_criteria(text: str) -> dict[str, FieldValue]:
    """Up to five non-empty plan lines, numbering stripped; one general criterion when none is given."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    criteria = [line for line in lines if len(line) > 2][:MAX_CRITERIA]
    return {"criteria": criteria or [FALLBACK_CRITERION]}


def parse_scores(text: str) -> dict[str, FieldValue]:
    """The first two 1-5 scores (first = Assistant A as shown); empty when fewer than two."""
    scores = _SCORE.findall(text)
    if len(scores) < 2:
        return {"score_first": "", "score_second": ""}
    return {"score_first": scores[0], "score_second": scores[1]}


def _totals(firsts: list[str], seconds: list[str]) -> tuple[int, int]:
    pairs = [(int(a), int(b)) for a, b in zip(firsts, seconds, strict=True) if a and b]
    return sum(a for a, _ in pairs), sum(b for _, b in pairs)


def _winner(first: int, second: int, first_label: str, second_label: str) -> str:
    if first == second:
        return "tie"
    return first_label if first > second else second_label


def both_orders_verdict(verdict_ab: str, verdict_ba: str) -> str:
    """The verdict when both orders (already mapped back) agree; otherwise ``position_inconsistent``."""
    return verdict_ab if verdict_ab == verdict_ba else POSITION_INCONSISTENT


def merge_scores(fields: Fields) -> dict[str, FieldValue]:
    a_in_ab, b_in_ab = _totals(list(fields["ab_first"]), list(fields["ab_second"]))
    b_in_ba, a_in_ba = _totals(list(fields["ba_first"]), list(fields["ba_second"]))
    verdict_ab = _winner(a_in_ab, b_in_ab, "A", "B")
    verdict_ba = _winner(b_in_ba, a_in_ba, "B", "A")  # shown first in the swapped order is B
    return {
        "merge": both_orders_verdict(verdict_ab, verdict_ba),
        "verdict_ab": verdict_ab,
        "verdict_ba": verdict_ba,
        "totals": f"AB order: A={a_in_ab} B={b_in_ab}; BA order: A={a_in_ba} B={b_in_ba}",
    }


def _scores_as(prefix: str) -> Parser:
    def parse(text: str) -> dict[str, FieldValue]:
        scores = parse_scores(text)
        return {f"{prefix}_first": scores["score_first"], f"{prefix}_second": scores["score_second"]}

    return Parser(f"bsm_scores_{prefix}_v1", (f"{prefix}_first", f"{prefix}_second"), parse)


BSM = MethodDefinition(
    kind="bsm",
    description="Branch-Solve-Merge judge: criteria, per-criterion scores in both orders, summed",
    steps=(
        Compute("split", split_pair, uses=("question",), provides=("user_question", "response_a", "response_b")),
        Step("branch", BRANCH_TEMPLATE, 160, parse=Parser("bsm_criteria_v1", ("criteria",), parse_criteria)),
        Step("solve_ab", SOLVE_AB_TEMPLATE, 48, parse=_scores_as("ab"), for_each="criteria"),
        Step("solve_ba", SOLVE_BA_TEMPLATE, 48, parse=_scores_as("ba"), for_each="criteria"),
        Compute(
            "merge",
            merge_scores,
            uses=("ab_first", "ab_second", "ba_first", "ba_second"),
            provides=("verdict_ab", "verdict_ba", "totals"),
            version="2",  # disagreeing orders: position_inconsistent (was: tie)
        ),
    ),
)
