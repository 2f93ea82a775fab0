"""New task inputs dropped as files into the inbox folder of a task.

``<state>/inbox/<task>/*.jsonl|*.parquet``; each row has ``prompt`` and optionally
``reference``, ``split`` (``train`` by default; ``eval`` rows need a reference) and
``input_id``. A file is read whole and validated before anything is written; a malformed file
is moved to ``rejected/`` with the reason written next to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2d_assets.tasks.base import EVAL, TRAIN, TaskInput, input_id
from s2d_assets.tasks.user_files import TaskFileError, read_rows

SUFFIXES = (".jsonl", ".parquet")
REJECTED = "rejected"
ALLOWED = {"prompt", "reference", "split", "input_id"}


class InboxError(ValueError):
    """A malformed inbox file; the message names the file and the row or field."""


def inbox_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) pairs, read by the same reader as user task files."""
    try:
        return read_rows(path)
    except TaskFileError as error:
        raise InboxError(str(error)) from None
    except Exception as error:  # polars raises several types for a corrupt Parquet file
        raise InboxError(f"{path}: not a readable file: {error}") from None


def read_inbox_file(path: Path, task_kind: str, meta_for_prompt: Callable[[str], dict[str, Any]]) -> list[TaskInput]:
    rows = _rows(path)
    if not rows:
        raise InboxError(f"{path}: no rows")
    inputs = []
    for number, row in rows:
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
