"""Task and inbox files: every bad file is refused whole, with the file and the row named."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from s2d_assets.config.tasks import UserTaskSpec
from s2d_assets.core.errors import UserError
from s2d_assets.tasks import EVAL, TRAIN, build_task
from s2d_assets.tasks.base import TaskInput, input_id
from s2d_assets.tasks.inbox import InboxError, combine_inputs, read_inbox_file, read_inbox_rows
from s2d_assets.tasks.user_files import TaskFileError, read_rows


def user_task(path: Path, answer_type: str = "exact", train: int = 1, eval_: int = 1):  # type: ignore[no-untyped-def]
    return build_task(
        UserTaskSpec(kind="user", path=str(path), answer_type=answer_type, train_size=train, eval_size=eval_)
    )


def jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet"])
def test_empty_file_names_the_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(TaskFileError, match=f"{path}: the file is empty"):
        read_rows(path)


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("question,answer\n")
    with pytest.raises(TaskFileError, match=f"{path}: the file holds no rows"):
        read_rows(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_non_utf8_file_names_file_and_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1{suffix}"
    text = {
        ".jsonl": '{"question": "ok", "answer": "a"}\n{"question": "caf\xe9", "answer": "b"}\n',
        ".csv": "question,answer\nok,a\ncaf\xe9,b\n",
        ".json": '[{"question": "caf\xe9", "answer": "b"}]',
    }[suffix]
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(TaskFileError, match="not UTF-8") as error:
        read_rows(path)
    assert str(path) in str(error.value) and "line" in str(error.value)


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(TaskFileError, match=f"{path}: not a readable Parquet file"):
        read_rows(path)


def test_nan_answer_in_jsonl_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text('{"question": "q1", "answer": "a"}\n{"question": "q2", "answer": NaN}\n')
    with pytest.raises(TaskFileError, match=r"row 2: field 'answer' is nan, not a finite number"):
        user_task(path).build_inputs()


def test_infinite_answer_in_parquet_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "inf.parquet"
    pl.DataFrame({"question": ["q1", "q2", "q3"], "answer": [1.0, float("inf"), 2.0]}).write_parquet(path)
    with pytest.raises(TaskFileError, match=r"row 2: field 'answer' is inf"):
        user_task(path, "number").build_inputs()


@pytest.mark.parametrize("value", ["inf", "NaN", "-Infinity"])
def test_non_finite_number_answer_in_csv_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"question,answer\nq1,3\nq2,{value}\n")
    with pytest.raises(TaskFileError, match=r"row 2: field 'answer' is not a finite number"):
        user_task(path, "number").build_inputs()


def test_conflicting_duplicates_are_refused_naming_both_rows(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "dup.jsonl",
        [
            {"question": "Capital of France?", "answer": "Paris"},
            {"question": "x", "answer": "y"},
            {"question": "capital of  France?", "answer": "Lyon"},
        ],
    )
    with pytest.raises(TaskFileError, match=r"rows 1 and 3: the same question with different answers"):
        user_task(path).build_inputs()


def test_repeated_question_with_the_same_answer_is_one_input(tmp_path: Path) -> None:
    rows = [{"question": "q1", "answer": "a"}, {"question": "q2", "answer": "b"}, {"question": "q1", "answer": "a"}]
    inputs = user_task(jsonl(tmp_path / "rep.jsonl", rows)).build_inputs()
    assert sorted(i.prompt for i in inputs) == ["q1", "q2"]


def test_too_few_questions_is_a_task_file_error(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "few.jsonl", [{"question": "q1", "answer": "a"}])
    with pytest.raises(TaskFileError, match=str(path)):
        user_task(path, train=2, eval_=2).build_inputs()


# -- inbox ----------------------------------------------------------------------------------------------
def inbox_rows(path: Path):  # type: ignore[no-untyped-def]
    return read_inbox_rows(path, "coin_flip", lambda p: {})


def test_duplicate_id_in_one_inbox_file_is_refused_naming_both_rows(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "dup.jsonl", [{"prompt": "p1", "input_id": "x1"}, {"prompt": "p2", "input_id": "x1"}])
    with pytest.raises(InboxError, match=r"row 2: input_id 'x1' is already row 1 of this file"):
        read_inbox_file(path, "coin_flip", lambda p: {})


def test_same_prompt_twice_in_one_inbox_file_is_refused(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "twice.jsonl", [{"prompt": "Heads up?"}, {"prompt": "heads  up?"}])
    with pytest.raises(InboxError, match=r"row 2: the same question"):
        inbox_rows(path)


def test_nan_reference_in_inbox_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text('{"prompt": "p", "split": "eval", "reference": NaN}\n')
    with pytest.raises(InboxError, match=r"row 1: field 'reference' is nan"):
        inbox_rows(path)


GENERATED = [
    TaskInput("t1", TRAIN, "A coin is heads up. Is it still heads up?", ""),
    TaskInput("e1", EVAL, "A coin is tails up. Is it still tails up?", "no"),
]


def test_eval_question_resent_as_train_is_refused(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "leak.jsonl", [{"prompt": "a coin is TAILS up.  Is it still tails up?", "input_id": "n1"}])
    with pytest.raises(InboxError, match=r"leak.jsonl: row 1: the same question is already the eval input 'e1'"):
        combine_inputs(GENERATED, inbox_rows(path))


def test_train_question_resent_as_eval_is_refused(tmp_path: Path) -> None:
    rows = [{"prompt": GENERATED[0].prompt, "split": "eval", "reference": "yes"}]
    with pytest.raises(InboxError, match=r"already the train input 't1' .*in the other split"):
        combine_inputs(GENERATED, inbox_rows(jsonl(tmp_path / "leak.jsonl", rows)))


def test_reused_id_for_a_new_question_is_refused(tmp_path: Path) -> None:
    first = jsonl(tmp_path / "a.jsonl", [{"prompt": "new question one", "input_id": "u1"}])
    second = jsonl(tmp_path / "b.jsonl", [{"prompt": "new question two", "input_id": "u1"}])
    with pytest.raises(InboxError, match=r"b.jsonl: row 1: input_id 'u1' is already used for another question"):
        combine_inputs(GENERATED, inbox_rows(first) + inbox_rows(second))
    with pytest.raises(InboxError, match=r"input_id 't1' is already used"):
        combine_inputs(GENERATED, inbox_rows(jsonl(tmp_path / "c.jsonl", [{"prompt": "other", "input_id": "t1"}])))


def test_a_file_sent_again_adds_nothing(tmp_path: Path) -> None:
    rows = [{"prompt": "brand new question"}]
    first, second = jsonl(tmp_path / "a.jsonl", rows), jsonl(tmp_path / "b.jsonl", rows)
    combined = combine_inputs(GENERATED, inbox_rows(first) + inbox_rows(second))
    assert [i.input_id for i in combined] == ["t1", "e1", input_id("coin_flip", "brand new question")]


def test_every_error_is_a_user_error() -> None:
    assert issubclass(TaskFileError, UserError) and issubclass(InboxError, UserError)
