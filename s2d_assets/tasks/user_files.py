"""Reading a user's task file: JSONL, JSON list, Parquet, CSV, or a `datasets` save_to_disk directory.

A file is read and checked whole before anything uses it; a bad row is refused with the
file and the row named (the line number for JSONL, the data row for CSV/Parquet/datasets).
Text files must be UTF-8; an empty file, a file without rows, a non-finite number (``NaN``,
``Infinity``) and the same question given twice with different answers are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from s2d_assets.core.errors import UserError, one_line
from s2d_assets.core.paths import resolve_path as resolve_path  # the tasks' file paths (core/paths.py)
from s2d_assets.tasks.base import normalize_prompt


class TaskFileError(UserError):
    """A malformed task file; the message names the file and the row."""


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) pairs from any supported file kind; a file without rows is refused."""
    rows = _read_rows(path)
    if not rows:
        raise TaskFileError(f"{path}: the file holds no rows")
    return rows


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.exists():
        raise TaskFileError(f"{path}: task file not found")
    if path.is_dir():
        return _numbered(_datasets_rows(path))
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet", ".csv"):
        raise TaskFileError(
            f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet, .csv or a directory"
        )
    if path.stat().st_size == 0:
        raise TaskFileError(f"{path}: the file is empty")
    if suffix == ".jsonl":
        return _jsonl_rows(path)
    if suffix == ".json":
        data = _json(path, _utf8(path))
        if not isinstance(data, list):
            raise TaskFileError(f"{path}: a .json task file must hold a list of objects")
        return _numbered(data, path)
    import polars as pl

    if suffix == ".parquet":
        try:
            return _numbered(pl.read_parquet(path).to_dicts())
        except Exception as error:  # polars raises several types for a file that is not Parquet
            raise TaskFileError(f"{path}: not a readable Parquet file: {one_line(str(error))[:200]}") from None
    _utf8(path)
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except Exception as error:  # polars: ComputeError, NoDataError, ...
        raise TaskFileError(f"{path}: not a readable CSV file: {one_line(str(error))[:200]}") from None
    return _numbered(frame.to_dicts())


def _utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TaskFileError(
            f"{path}: line {line}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from None


def require_text(path: Path, rows: Sequence[tuple[int, dict[str, Any]]], fields: Sequence[str]) -> None:
    """Every row must carry every field as non-empty text (finite numbers are accepted and read as text)."""
    for number, row in rows:
        for name in fields:
            value = row.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                raise TaskFileError(f"{path}: row {number}: field {name!r} is {value}, not a finite number or text")
            if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
                raise TaskFileError(f"{path}: row {number}: field {name!r} is missing or not non-empty text")


def check_conflicts(path: Path, items: Iterable[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """(row, question, answer) items with repeats of a question dropped; a repeat with another answer is refused.

    Questions are compared normalised (``normalize_prompt``), answers as given.
    """
    first: dict[str, tuple[int, str]] = {}
    kept = []
    for number, question, answer in items:
        key = normalize_prompt(question)
        if key in first:
            earlier, earlier_answer = first[key]
            if earlier_answer != answer:
                raise TaskFileError(
                    f"{path}: rows {earlier} and {number}: the same question with different answers "
                    f"({earlier_answer!r} and {answer!r}); keep one"
                )
            continue
        first[key] = (number, answer)
        kept.append((number, question, answer))
    return kept


def _json(path: Path, text: str, where: str = "") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskFileError(f"{path}: {where}not valid JSON ({error.msg})") from None


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        row = _json(path, line, f"row {number}: ")
        if not isinstance(row, dict):
            raise TaskFileError(f"{path}: row {number}: expected a JSON object")
        rows.append((number, row))
    return rows


def _numbered(rows: list[Any], path: Path | None = None) -> list[tuple[int, dict[str, Any]]]:
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise TaskFileError(f"{path}: row {number}: expected an object")
    return list(enumerate(rows, start=1))


def _datasets_rows(path: Path) -> list[dict[str, Any]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(path))
    except FileNotFoundError as error:
        raise TaskFileError(f"{path}: not a datasets save_to_disk directory ({one_line(str(error))})") from None
    except Exception as error:  # a directory whose files are corrupt
        raise TaskFileError(f"{path}: not a readable datasets directory ({one_line(str(error))[:200]})") from None
    if isinstance(loaded, DatasetDict):
        if "train" not in loaded:
            raise TaskFileError(f"{path}: a DatasetDict needs a 'train' split; found {sorted(loaded)}")
        loaded = loaded["train"]
    assert isinstance(loaded, Dataset)
    return loaded.to_list()
