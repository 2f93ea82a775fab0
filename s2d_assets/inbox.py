"""New task inputs dropped as files into the inbox folder of a task.

``<state>/inbox/<task>/*.jsonl|*.parquet``; each row has ``prompt`` and optionally
``reference``, ``split`` (``train`` by default; ``eval`` rows need a reference) and
``input_id``. A file is read whole and validated before anything is written; a malformed file
is moved to ``rejected/`` with the reason written next to it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from s2d_assets.tasks.base import EVAL, TRAIN, TaskInput, input_id

SUFFIXES = (".jsonl", ".parquet")
REJECTED = "rejected"
ALLOWED = {"prompt", "reference", "split", "input_id"}


class InboxError(ValueError):
    """A malformed inbox file; the message names the file and the row or field."""


def inbox_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        try:
            return pl.read_parquet(path).to_dicts()
        except Exception as error:  # polars raises several types for corrupt files
            raise InboxError(f"{path}: not a readable Parquet file: {error}") from None
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InboxError(f"{path}: row {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise InboxError(f"{path}: row {number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_inbox_file(path: Path, task_kind: str, meta_for_prompt: Callable[[str], dict[str, Any]]) -> list[TaskInput]:
    rows = _rows(path)
    if not rows:
        raise InboxError(f"{path}: no rows")
    inputs = []
    for number, row in enumerate(rows, start=1):
        where = f"{path}: row {number}"
        unknown = set(row) - ALLOWED
        if unknown:
            raise InboxError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(ALLOWED)}")
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InboxError(f"{where}: field 'prompt' must be a non-empty string")
        split = row.get("split") or TRAIN
        if split not in (TRAIN, EVAL):
            raise InboxError(f"{where}: field 'split' must be 'train' or 'eval', got {split!r}")
        reference = row.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise InboxError(f"{where}: field 'reference' must be a string")
        if split == EVAL and not reference:
            raise InboxError(f"{where}: eval rows need a 'reference' answer")
        identifier = row.get("input_id") or input_id(task_kind, prompt)
        inputs.append(TaskInput(str(identifier), split, prompt, reference or "", meta_for_prompt(prompt)))
    return inputs


def reject(path: Path, reason: str) -> Path:
    """Move a malformed file aside, with ``<name>.reason.txt`` beside it."""
    target_dir = path.parent / REJECTED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    shutil.move(str(path), target)
    (target_dir / f"{path.name}.reason.txt").write_text(reason + "\n")
    return target


def listing_stamp(folder: Path) -> dict[str, list[int]]:
    """What the sensor remembers of a folder: each file's size and modification time."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in inbox_files(folder)}
