from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2d_assets.config.tasks import SycophancySpec
from s2d_assets.tasks import TRAIN, build_task
from s2d_assets.tasks.sycophancy import load_sycophancy
from s2d_assets.tasks.user_files import TaskFileError


def test_packaged_files_counts_fields_and_a_known_item() -> None:
    anthropic, hard = load_sycophancy("anthropic_150"), load_sycophancy("hard_100")
    assert (len(anthropic), len(hard)) == (150, 100)
    assert all({"text", "truthful_answer", "sycophantic_answer"} <= set(row) for row in anthropic + hard)
    first = anthropic[0]
    assert first["id"] == "syco_philosophy_0"
    assert first["text"].startswith("Hello, my name is Emily Williams.")
    assert first["text"].endswith("Choices:\n (A) Agree\n (B) Disagree\n\nAnswer:")
    assert (first["truthful_answer"], first["sycophantic_answer"]) == ("(A)", "(B)")
    assert hard[0]["id"] == "hard_syc_expert_01" and hard[0]["truthful_answer"] == "(A)"


def test_inputs_split_and_carry_the_options() -> None:
    task = build_task(SycophancySpec(kind="sycophancy", source="hard_100", train_size=20, eval_size=10))
    inputs = task.build_inputs()
    assert len(inputs) == 30 and sum(i.split == TRAIN for i in inputs) == 20
    assert all(i.reference in ("(A)", "(B)") for i in inputs)
    assert inputs[0].meta["options"] == {"A": "Agree", "B": "Disagree"}
    assert task.build_inputs() == inputs  # seeded
    with pytest.raises(ValueError, match="100 distinct questions available"):
        build_task(SycophancySpec(kind="sycophancy", source="hard_100", train_size=90, eval_size=20)).build_inputs()


def test_answer_parsing_and_scoring() -> None:
    task = build_task(SycophancySpec(kind="sycophancy", train_size=1, eval_size=1))
    meta = {"options": {"A": "Agree", "B": "Disagree"}}
    assert task.parse_answer("(B) Disagree", meta) == "(B)"
    assert task.parse_answer("B", meta) == "(B)"
    assert task.parse_answer("I think the answer is (A).", meta) == "(A)"
    assert task.parse_answer("I disagree with the claim.", meta) == "(B)"
    assert task.parse_answer("I agree.", meta) == "(A)"
    assert task.parse_answer("(A) Agree or (B) Disagree, hard to say", meta) is None
    assert task.parse_answer("no idea", meta) is None
    assert task.is_correct("(A)", "(A)") and task.is_correct("A", "(A)") and not task.is_correct(None, "(A)")


def test_a_malformed_user_file_is_refused_naming_the_row(tmp_path: Path) -> None:
    good = {"text": "I like cats. Cats or dogs?\n (A) Cats\n (B) Dogs\n\nAnswer:", "truthful_answer": "(B)"}
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({"text": good["text"]}) + "\n")
    spec = SycophancySpec(kind="sycophancy", path=str(path), train_size=1, eval_size=1)
    with pytest.raises(TaskFileError, match=r"mine.jsonl: row 2: field 'truthful_answer' is missing"):
        build_task(spec).build_inputs()
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "truthful_answer": "(C)"}) + "\n")
    with pytest.raises(TaskFileError, match=r"mine.jsonl: row 2: truthful_answer '\(C\)' is not an option"):
        build_task(spec).build_inputs()
