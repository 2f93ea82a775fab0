from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from s2d_assets.config.tasks import GenerationSettingSpec, PairwiseJudgingSpec
from s2d_assets.tasks import TRAIN, build_task
from s2d_assets.tasks.judging import (
    alter_final_number,
    label_agreement,
    load_mt_bench,
    load_mt_bench_references,
    pair_prompt,
    parse_pair,
    parse_verdict,
    position_inconsistency,
)
from s2d_assets.tasks.user_files import TaskFileError


def test_mt_bench_questions_counts_fields_and_a_known_item() -> None:
    questions = load_mt_bench()
    assert len(questions) == 80
    assert all(len(q["turns"]) == 2 and q["category"] for q in questions)
    first = questions[0]
    assert first["question_id"] == 81 and first["category"] == "writing"
    assert first["turns"][0].startswith("Compose an engaging travel blog post about a recent trip to Hawaii")


def test_mt_bench_pairs_come_from_two_generation_settings() -> None:
    seen = []

    def answerer(prompts, setting):  # type: ignore[no-untyped-def]
        seen.append((len(prompts), setting.temperature))
        return [f"t={setting.temperature}: {p[:10]}" for p in prompts]

    spec = PairwiseJudgingSpec(
        kind="pairwise_judging",
        source="mt_bench",
        train_size=3,
        eval_size=2,
        setting_b=GenerationSettingSpec(temperature=0.9, max_new_tokens=8),
    )
    task = build_task(spec)
    assert task.needs_base_model  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="answers its questions with the base model"):
        task.build_inputs()
    inputs = task.with_answerer(lambda: answerer).build_inputs()  # type: ignore[attr-defined]
    assert seen == [(5, 0.0), (5, 0.9)]
    assert len(inputs) == 5 and sum(i.split == TRAIN for i in inputs) == 3
    question, answer_a, answer_b = parse_pair(inputs[0].prompt)
    assert question in {q["turns"][0] for q in load_mt_bench()}
    assert answer_a.startswith("t=0.0: ") and answer_b.startswith("t=0.9: ")
    assert inputs[0].reference == "" and not task.is_correct("A", "")


def test_a_user_pair_file_with_labels_and_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"question": "2+2?", "answer_a": "4", "answer_b": "5", "label": "A"},
        {"question": "Capital of Peru?", "answer_a": "Quito", "answer_b": "Lima", "label": "b"},
        {"question": "Say hi", "answer_a": "hi", "answer_b": "hello"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = PairwiseJudgingSpec(kind="pairwise_judging", source="file", path=str(path), train_size=2, eval_size=1)
    task = build_task(spec)
    inputs = {parse_pair(i.prompt)[0]: i for i in task.build_inputs()}
    assert inputs["2+2?"].reference == "A" and inputs["Capital of Peru?"].reference == "B"
    assert inputs["Say hi"].reference == ""
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "label": "maybe"}) + "\n")
    with pytest.raises(TaskFileError, match=r"pairs.jsonl: row 2: label 'maybe' is not one of A, B, tie"):
        task.build_inputs()


def test_order_swap_and_verdicts() -> None:
    spec = PairwiseJudgingSpec(
        kind="pairwise_judging", source="file", path="x.jsonl", train_size=1, eval_size=1, perturbations=("order_swap",)
    )
    task = build_task(spec)
    (variant,) = task.perturb(pair_prompt("Q", "first", "second"), {})  # type: ignore[attr-defined]
    assert parse_pair(variant.prompt) == ("Q", "second", "first")
    assert variant.answer_map == {"A": "B", "B": "A", "tie": "tie"}
    assert parse_verdict("[[B]]") == "B" and parse_verdict("[[C]]") == "tie"
    assert parse_verdict("A") == "A" and parse_verdict("Assistant B is better.") == "B"
    assert parse_verdict("Both are equally good.") == "tie" and parse_verdict("hmm") is None
    assert parse_verdict("position_inconsistent") == "position_inconsistent"  # no verdict, and not a tie


def test_metrics() -> None:
    # (verdict with the original order, verdict with A and B swapped, as the judge said it)
    pairs = [("A", "B"), ("A", "A"), ("tie", "tie"), ("B", None)]
    assert position_inconsistency(pairs) == 0.5
    assert label_agreement(["A", "B", "tie"], ["A", "", "B"]) == 0.5
    assert label_agreement(["A"], [""]) is None


@pytest.mark.timeout(60)
def test_labelled_reference_pairs_have_known_labels_provenance_and_whole_questions_per_split() -> None:
    references = {r["question_id"]: r for r in load_mt_bench_references()}
    assert len(references) == 30 and {r["category"] for r in references.values()} == {"math", "reasoning", "coding"}
    spec = PairwiseJudgingSpec(kind="pairwise_judging", train_size=24, eval_size=16, seed=3)
    task = build_task(spec)
    assert spec.source == "mt_bench_reference" and not task.needs_base_model  # type: ignore[attr-defined]
    inputs = task.build_inputs()
    assert len(inputs) == 40 and sum(i.split == TRAIN for i in inputs) == 24
    labels = {i.reference for i in inputs}
    assert labels == {"A", "B"}  # the reference's side, in a random order
    splits: dict[int, set[str]] = {}
    for item in inputs:
        question, answer_a, answer_b = parse_pair(item.prompt)
        source = references[item.meta["question_id"]]
        assert question == source["question"]
        better, worse = (answer_a, answer_b) if item.reference == "A" else (answer_b, answer_a)
        assert better == source["reference"] and worse != better
        if item.meta["wrong_answer"] == "other_question_reference":
            assert worse == references[item.meta["wrong_answer_question_id"]]["reference"]
        else:
            assert item.meta["wrong_answer"] == "altered_final_number" and item.meta["category"] == "math"
        assert item.meta["source"] == "mt_bench_reference" and item.meta["labelled"]
        splits.setdefault(item.meta["question_id"], set()).add(item.split)
    assert all(len(s) == 1 for s in splits.values())  # a question's pairs are in one split
    with pytest.raises(ValueError, match="make 40 labelled pairs"):
        build_task(PairwiseJudgingSpec(kind="pairwise_judging", train_size=30, eval_size=20)).build_inputs()


def test_altering_the_final_answer() -> None:
    rng = random.Random(0)
    text = "x = 38\n\nThere are 19 integers in the solution of |x + 5| < 10."
    altered = alter_final_number(text, rng)
    assert altered is not None and altered.startswith("x = 38\n\nThere are ")
    assert "19 integers" not in altered and altered.endswith("< 10.")
    assert alter_final_number("No number at the end.", rng) is None
