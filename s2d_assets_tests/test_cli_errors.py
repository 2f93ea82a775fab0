"""The `s2d` error contract: a user error is one line and exit 2, an internal error 1; --debug adds the traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, asset, define_asset_job

from s2d_assets.cli import main
from s2d_assets.core.errors import UserError
from s2d_assets.defs.runs import run_job, user_error_message
from s2d_assets.tasks.user_files import TaskFileError


def test_user_error_is_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "-e", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"s2d: error: {tmp_path / 'absent.yaml'}: experiment file not found"]


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--debug", "run", "-e", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" in err and "ExperimentError" in err


def test_internal_error_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr("s2d_assets.cli.cmd_results", boom)
    parser_main = main(["results"])
    err = capsys.readouterr().err
    assert parser_main == 1 and "internal error: RuntimeError: a bug" in err and "Traceback" not in err


def test_exit_status_from_the_real_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "s2d_assets.cli", "sql", "DROP TABLE inputs"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- errors raised inside a Dagster run --------------------------------------------------------------
@asset
def reads_a_bad_file() -> None:
    raise TaskFileError("/data/mine.jsonl: row 7: field 'answer' is missing or not non-empty text")


@asset
def wraps_a_bad_file() -> None:
    try:
        raise TaskFileError("/data/mine.csv: row 2: the same question with different answers")
    except TaskFileError as error:
        raise RuntimeError("could not build the inputs") from error


@asset
def has_a_bug() -> None:
    raise KeyError("internal")


@pytest.mark.parametrize(
    ("asset_def", "expected"),
    [
        (reads_a_bad_file, "/data/mine.jsonl: row 7: field 'answer' is missing or not non-empty text"),
        (wraps_a_bad_file, "/data/mine.csv: row 2: the same question with different answers"),
        (has_a_bug, None),
    ],
)
def test_a_user_error_inside_a_run_is_reported_as_a_user_error(asset_def, expected: str | None) -> None:  # type: ignore[no-untyped-def]
    defs = Definitions(assets=[asset_def], jobs=[define_asset_job("all")])
    with DagsterInstance.ephemeral() as instance:
        if expected is None:
            result = run_job(defs.resolve_job_def("all"), instance)
            assert not result.success
            return
        with pytest.raises(UserError) as error:
            run_job(defs.resolve_job_def("all"), instance)
    assert str(error.value).startswith(expected + " (step ")


def test_mapping_ignores_lookalike_class_names() -> None:
    class Record:
        def __init__(self, cls_name: str, message: str, cause=None) -> None:  # type: ignore[no-untyped-def]
            self.cls_name, self.message, self.cause, self.context = cls_name, message, cause, None

    assert user_error_message(Record("ValueError", "ValueError: x")) is None
    nested = Record(
        "DagsterExecutionStepExecutionError", "step failed", Record("StateError", "pkg.StateError: f: bad\n")
    )
    assert user_error_message(nested) == "f: bad"
