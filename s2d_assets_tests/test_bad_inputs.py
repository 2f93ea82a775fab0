"""The corpus of bad inputs (``data/bad/``): each is refused by the `s2d` command with one line naming the file and
the field or row, exit status 2, no traceback, and the warehouse and the checkpoint folder unchanged, byte for byte.

Experiment files are run as they are; task files through a user task that reads them; inbox files dropped into
the task's inbox; SQL model folders as the project's SQL folder; queries with ``s2d sql --file``. Binary inputs
(Parquet, a ``datasets`` directory) and damaged state files are generated here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml

from s2d_assets.cli import main
from s2d_assets.core.checkpoints import publish_checkpoint
from s2d_assets.core.paths import PROJECT_ROOT, StatePaths
from s2d_assets.core.warehouse import Warehouse

BAD = Path(__file__).parent / "data" / "bad"
SUPPORT = BAD / "support" / "questions.jsonl"
TASK = "arith"


@dataclass(frozen=True)
class Case:
    name: str  # a file under data/bad/, or a generated input
    expect: tuple[str, ...]  # what the message names besides the file: the field, the row, the problem
    setup: Callable[[Path, Path], Path] | None = field(default=None, compare=False)  # (tmp, state) -> the bad file
    names: str | None = None  # the file the message names, when it is not the case's own file


def experiment_data(model: Path, task_path: Path | str = SUPPORT, **task: object) -> dict[str, object]:
    spec = {"kind": "user", "path": str(task_path), "answer_type": "number", "train_size": 3, "eval_size": 3}
    return {
        "name": "bad",
        "n_samples": 2,
        "model": {"source": "path", "path": str(model)},
        "tasks": {TASK: {**spec, **task}},
        "methods": {"rar_1step": {"kind": "rar_1step"}},
    }


EXPERIMENTS = [
    Case("experiments/bad_cron.yaml", ("schedule.refresh_cron", "0 25 * * *")),
    Case("experiments/budget_zero.yaml", ("methods.rar_1step.max_new_tokens.respond",)),
    Case("experiments/duplicate_key.yaml", ("duplicate key 'n_samples'", "line 3")),
    Case("experiments/huge_samples.yaml", ("n_samples", "limits: {n_samples:")),
    Case("experiments/huge_train_size.yaml", ("tasks.arith.train_size", "limits: {train_size:")),
    Case("experiments/inf_number.yaml", ("sampling.temperature", "finite")),
    Case("experiments/model_path_missing.yaml", ("model.path",), names="/nonexistent/model"),
    Case("experiments/name_traversal.yaml", ("name", "../../escape", "slug")),
    Case("experiments/nan_number.yaml", ("curation.min_agreement", "finite")),
    Case("experiments/not_a_mapping.yaml", ("must be a mapping",)),
    Case("experiments/not_utf8.yaml", ("not UTF-8", "offset")),
    Case("experiments/not_yaml.yaml", ("not valid YAML", "line 7")),
    Case("experiments/prompt_broken_placeholder.yaml", ("methods.rar_1step.prompts.respond", "broken placeholder")),
    Case("experiments/prompt_unknown_placeholder.yaml", ("methods.rar_1step.prompts.respond", "{hint}")),
    Case("experiments/prompt_without_question.yaml", ("methods.rar_1step.prompts.respond", "{question}")),
    Case("experiments/task_name_not_slug.yaml", ("tasks", "Arith-Task", "slug")),
    Case("experiments/unknown_field.yaml", ("samples_per_input", "Extra inputs")),
]

TASK_FILES = [
    Case("tasks/bad_json_line.jsonl", ("row 2", "not valid JSON")),
    Case("tasks/conflicting_duplicates.csv", ("rows 1 and 3", "different answers")),
    Case("tasks/conflicting_duplicates.jsonl", ("rows 1 and 3", "different answers")),
    Case("tasks/empty.csv", ("the file is empty",)),
    Case("tasks/header_only.csv", ("holds no rows",)),
    Case("tasks/infinite_answer.csv", ("row 2: field 'answer'", "finite")),
    Case("tasks/missing_field.json", ("row 2: field 'answer'",)),
    Case("tasks/nan_answer.jsonl", ("row 2: field 'answer'", "nan")),
    Case("tasks/not_a_datasets_dir", ("datasets",)),
    Case("tasks/not_a_list.json", ("must hold a list",)),
    Case("tasks/not_a_number.jsonl", ("row 1: field 'answer'", "not a finite number")),
    Case("tasks/not_utf8.jsonl", ("line 2", "not UTF-8")),
    Case("tasks/too_few_questions.jsonl", ("2 distinct questions", "6 asked for")),
    Case("tasks/unsupported.txt", ("unsupported file type",)),
]


def _parquet(rows: dict[str, list[object]]) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, state: Path) -> Path:
        path = tmp / "generated.parquet"
        pl.DataFrame(rows).write_parquet(path)
        return path

    return make


def _bytes(name: str, data: bytes) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, state: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _datasets_dir(tmp: Path, state: Path) -> Path:
    from datasets import Dataset

    path = tmp / "generated_dataset"
    rows = [{"question": "What is 3 + 3?", "answer": "6"}, {"question": "x?", "answer": "1"}]
    Dataset.from_list([*rows, {"question": "What is 3 + 3?", "answer": "7"}]).save_to_disk(str(path))
    return path


GENERATED_TASK_FILES = [
    Case(
        "generated/nan_answer.parquet",
        ("row 2: field 'answer' is nan",),
        _parquet({"question": ["a?", "b?"], "answer": [1.0, float("nan")]}),
    ),
    Case(
        "generated/infinite_answer.parquet",
        ("row 1: field 'answer' is inf",),
        _parquet({"question": ["a?"], "answer": [float("inf")]}),
    ),
    Case("generated/missing_field.parquet", ("row 1: field 'answer'",), _parquet({"question": ["a?"], "reply": ["1"]})),
    Case("generated/corrupt.parquet", ("not a readable Parquet file",), _bytes("corrupt.parquet", b"PAR1 not really")),
    Case("generated/empty.parquet", ("the file is empty",), _bytes("empty.parquet", b"")),
    Case("generated/conflicting_dataset_dir", ("rows 1 and 3", "different answers"), _datasets_dir),
]

INBOX_FILES = [
    Case("inbox/bad_split.jsonl", ("row 1: field 'split'",)),
    Case("inbox/duplicate_id.jsonl", ("row 2: input_id 'mine-1' is already row 1",)),
    Case("inbox/empty.jsonl", ("the file is empty",)),
    Case("inbox/eval_without_reference.jsonl", ("row 1: eval rows need a 'reference'",)),
    Case("inbox/nan_reference.jsonl", ("row 1: field 'reference'",)),
    Case("inbox/not_utf8.jsonl", ("line 1", "not UTF-8")),
    Case("inbox/resent_questions.jsonl", ("row 1:", "is already the", "split")),
    Case("inbox/reused_id.jsonl", ("row 1: input_id 'user-101365718a2a' is already used for another question",)),
    Case("inbox/same_question_twice.jsonl", ("row 2: the same question",)),
    Case("inbox/unknown_field.jsonl", ("row 1: unknown field(s) ['answer']",)),
]

SQL_MODELS = [
    Case("sql_models/cycle", ("cycle",)),
    Case("sql_models/does_not_parse", ("broken.sql", "does not parse")),
    Case("sql_models/not_utf8", ("latin1.sql", "not UTF-8")),
    Case("sql_models/two_statements", ("two.sql",)),
    Case("sql_models/unknown_table", ("orphan.sql", "pools_that_do_not_exist")),
]

QUERIES = [
    Case("queries/attach.sql", ("refused: ATTACH",)),
    Case("queries/copy_out.sql", ("refused: COPY",)),
    Case("queries/delete.sql", ("refused: DELETE",)),
    Case("queries/does_not_parse.sql", ("does not parse", "line 1")),
    Case("queries/glob.sql", ("file system operations are disabled",)),
    Case("queries/install.sql", ("refused: INSTALL",)),
    Case("queries/read_csv.sql", ("file system operations are disabled",)),
    Case("queries/read_passwd.sql", ("file system operations are disabled",)),
    Case("queries/two_statements.sql", ("one statement at a time",)),
    Case("queries/unknown_table.sql", ("no_such_table",)),
]


def _damaged_warehouse(tmp: Path, state: Path) -> Path:
    path = StatePaths(state).warehouse
    path.write_bytes(b"this is not a DuckDB file\n" * 100)
    return path


def _truncated_dagster_yaml(tmp: Path, state: Path) -> Path:
    path = StatePaths(state).dagster_home / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("concurrency:\n  pools:\n    default_limit: [")
    return path


STATE_FILES = [
    Case("state/damaged_warehouse", ("not a DuckDB database", "mv "), _damaged_warehouse),
    Case("state/truncated_dagster_yaml", ("not a valid Dagster instance file", "delete it"), _truncated_dagster_yaml),
]

ALL = EXPERIMENTS + TASK_FILES + GENERATED_TASK_FILES + INBOX_FILES + SQL_MODELS + QUERIES + STATE_FILES


def test_the_corpus_is_complete() -> None:
    files = {p.relative_to(BAD).parts[0:2] for p in BAD.rglob("*") if p.is_file() and "support" not in p.parts}
    named = {tuple(Path(c.name).parts[0:2]) for c in ALL}
    assert files <= named, sorted(files - named)
    assert len(ALL) >= 30
    kinds = {Path(c.name).suffix for c in TASK_FILES + GENERATED_TASK_FILES}
    assert {".jsonl", ".json", ".csv", ".parquet", ""} <= kinds  # "" = a datasets directory


# -- the state a bad input must not change ---------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder with warehouse rows, its read snapshot and a published checkpoint."""
    state = tmp_path_factory.mktemp("pristine") / "state"
    paths = StatePaths(state)
    warehouse = Warehouse(paths.warehouse, "bad")
    inputs = pl.DataFrame(
        {"task": TASK, "split": ["train", "eval"], "input_id": ["i1", "i2"], "prompt": ["p1", "p2"]}
        | {"reference": ["", "3"], "meta": "{}"}
    )
    warehouse.replace_rows("inputs", {"task": TASK}, inputs)
    pool = pl.DataFrame(
        {"task": TASK, "method": "rar_1step", "input_id": ["i1"], "answer": "3", "votes": '{"3": 2}'}
        | {"n_samples": 2, "agreement": 1.0, "kept": True, "reason": "kept"}
    )
    warehouse.replace_rows("curated_pool", {"task": TASK, "method": "rar_1step"}, pool)

    def train(staging: Path) -> None:
        (staging / "adapter_model.safetensors").write_bytes(b"weights")

    publish_checkpoint(paths.checkpoint("bad", TASK, "rar_1step"), "v1", train, {"mode": "lora"})
    return state


def fingerprint(state: Path) -> dict[str, str]:
    """Hashes of the warehouse file, its snapshot and every file and link of the checkpoint folder."""
    paths = StatePaths(state)
    found = {}
    for path in [paths.warehouse, paths.warehouse.with_name("warehouse.read.duckdb"), *paths.checkpoints.rglob("*")]:
        key = str(path.relative_to(state))
        if path.is_symlink():
            found[key] = "-> " + str(path.readlink())
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough of a model directory for the checks that run before a model is loaded."""
    path = tmp_path_factory.getbasetemp() / "fake-model"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


def run_case(
    case: Case, tmp: Path, pristine: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], Path]:
    """Arguments for `s2d` and the file the message must name, with the state folder prepared."""
    state = tmp / "state"
    shutil.copytree(pristine, state, symlinks=True)
    monkeypatch.setenv("S2D_STATE", str(state))
    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster_home"))
    monkeypatch.setenv("S2D_EXPERIMENT", str(PROJECT_ROOT / "experiments" / "default.yaml"))
    kind = Path(case.name).parts[0]
    source = case.setup(tmp, state) if case.setup else BAD / case.name
    good = tmp / "good.yaml"
    if kind == "experiments":
        return ["run", "-e", str(source)], source
    if kind in ("tasks", "generated"):
        good.write_text(yaml.safe_dump(experiment_data(model, source)))
        return ["run", "-e", str(good)], source
    good.write_text(yaml.safe_dump(experiment_data(model)))
    if kind == "inbox":
        inbox = StatePaths(state).inbox / TASK
        inbox.mkdir(parents=True)
        shutil.copy(source, inbox / source.name)
        return ["run", "-e", str(good)], inbox / source.name
    if kind == "sql_models":
        from s2d_assets.defs import definitions

        monkeypatch.setattr(definitions.build_definitions, "__defaults__", (source,))
        return ["run", "-e", str(good)], source
    if kind == "queries":
        return ["sql", "--file", str(source)], source
    return ["run", "-e", str(good)], source  # state


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
@pytest.mark.timeout(120)
def test_bad_input_is_refused_cleanly(
    case: Case,
    tmp_path: Path,
    pristine: Path,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, named = run_case(case, tmp_path, pristine, model_dir, monkeypatch)
    before = fingerprint(tmp_path / "state")
    capsys.readouterr()  # what the set-up printed
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err + out
    assert len(lines) == 1 and lines[0].startswith("s2d: error: "), err
    message = lines[0]
    assert (case.names or str(named)) in message, message  # a SQL model folder: the model file inside it
    for fragment in case.expect:
        assert fragment in message, (fragment, message)
    assert fingerprint(tmp_path / "state") == before


def test_the_fingerprint_sees_a_change(pristine: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(pristine, state, symlinks=True)
    before = fingerprint(state)
    assert len(before) >= 5
    Warehouse(StatePaths(state).warehouse, "bad").replace_rows("inputs", {"task": TASK}, pl.DataFrame())
    assert fingerprint(state) != before


def test_every_support_question_is_valid() -> None:
    rows = [json.loads(line) for line in SUPPORT.read_text().splitlines()]
    assert len({r["question"] for r in rows}) == len(rows) >= 6
