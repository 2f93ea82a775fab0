from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2d_assets.config.experiment import GenerationSettingSpec, PairwiseJudgingSpec
from s2d_assets.methods.bsm import pair_prompt, parse_pair
from s2d_assets.tasks import TRAIN, build_task
from s2d_assets.tasks.judging import (
    label_agreement,
    load_mt_bench,
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


def test_metrics() -> None:
    # (verdict with the original order, verdict with A and B swapped, as the judge said it)
    pairs = [("A", "B"), ("A", "A"), ("tie", "tie"), ("B", None)]
    assert position_inconsistency(pairs) == 0.5
    assert label_agreement(["A", "B", "tie"], ["A", "", "B"]) == 0.5
    assert label_agreement(["A"], [""]) is None
