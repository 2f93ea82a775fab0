"""Reading a user's task file: JSONL, JSON list, Parquet, CSV, or a `datasets` save_to_disk directory.

A file is read and checked whole before anything uses it; a bad row is refused with the
file and the row named (the line number for JSONL, the data row for CSV/Parquet/datasets).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import PROJECT_ROOT


class TaskFileError(ValueError):
    """A malformed task file; the message names the file and the row."""


def resolve_path(value: str) -> Path:
    """A relative path is taken from the working directory, else from the project root."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return PROJECT_ROOT / path


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) pairs from any supported file kind."""
    if not path.exists():
        raise TaskFileError(f"{path}: task file not found")
    if path.is_dir():
        return _numbered(_datasets_rows(path))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path)
    if suffix == ".json":
        data = _json(path, path.read_text())
        if not isinstance(data, list):
            raise TaskFileError(f"{path}: a .json task file must hold a list of objects")
        return _numbered(data, path)
    if suffix == ".parquet":
        import polars as pl

        return _numbered(pl.read_parquet(path).to_dicts())
    if suffix == ".csv":
        import polars as pl

        try:
            frame = pl.read_csv(path, infer_schema=False)
        except pl.exceptions.ComputeError as error:
            raise TaskFileError(f"{path}: not a readable CSV file: {error}") from None
        return _numbered(frame.to_dicts())
    raise TaskFileError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet, .csv or a directory")


def require_text(path: Path, rows: Sequence[tuple[int, dict[str, Any]]], fields: Sequence[str]) -> None:
    """Every row must carry every field as non-empty text (numbers are accepted and read as text)."""
    for number, row in rows:
        for name in fields:
            value = row.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
                raise TaskFileError(f"{path}: row {number}: field {name!r} is missing or not non-empty text")


def _json(path: Path, text: str, where: str = "") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskFileError(f"{path}: {where}not valid JSON ({error.msg})") from None


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
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
        raise TaskFileError(f"{path}: not a datasets save_to_disk directory ({error})") from None
    if isinstance(loaded, DatasetDict):
        if "train" not in loaded:
            raise TaskFileError(f"{path}: a DatasetDict needs a 'train' split; found {sorted(loaded)}")
        loaded = loaded["train"]
    assert isinstance(loaded, Dataset)
    return loaded.to_list()
