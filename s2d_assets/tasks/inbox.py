"""New task inputs dropped as files into the inbox folder of a task.

``<state>/inbox/<task>/*.jsonl|*.parquet``; each row has ``prompt`` and optionally
``reference``, ``split`` (``train`` by default; ``eval`` rows need a reference) and
``input_id``. A file is read whole and validated before anything is written; a malformed file
is moved to ``rejected/`` with the reason written next to it.

Ids are unique within a file and never reused: an id names one question (compared normalised)
across the task's inputs and every inbox file. A question is in one split only: one whose
normalised prompt is already in the other split is refused, as is the same question under a
second id (``combine_inputs``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import UserError
from s2d_assets.tasks.base import EVAL, TRAIN, TaskInput, input_id, normalize_prompt
from s2d_assets.tasks.user_files import TaskFileError, read_rows

SUFFIXES = (".jsonl", ".parquet")
REJECTED = "rejected"
ALLOWED = {"prompt", "reference", "split", "input_id"}


class InboxError(UserError):
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
    """The file's inputs, checked whole (fields, splits, ids unique, no conflicting repeats)."""
    return [item for _, item in read_inbox_rows(path, task_kind, meta_for_prompt)]


def read_inbox_rows(
    path: Path, task_kind: str, meta_for_prompt: Callable[[str], dict[str, Any]]
) -> list[tuple[str, TaskInput]]:
    """(``"<file>: row <n>"``, input) pairs of one inbox file, checked whole."""
    rows = _rows(path)
    if not rows:
        raise InboxError(f"{path}: no rows")
    inputs: list[tuple[str, TaskInput]] = []
    rows_by_id: dict[str, int] = {}
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
        if isinstance(reference, float):  # NaN / Infinity (JSON or Parquet) can never be scored
            raise InboxError(f"{where}: field 'reference' is {reference}, not an answer; give the answer as text")
        if reference is not None and not isinstance(reference, str):
            raise InboxError(f"{where}: field 'reference' must be a string")
        if split == EVAL and not reference:
            raise InboxError(f"{where}: eval rows need a 'reference' answer")
        identifier = row.get("input_id")
        if identifier is not None and (not isinstance(identifier, str | int) or not str(identifier).strip()):
            raise InboxError(f"{where}: field 'input_id' must be non-empty text")
        identifier = str(identifier).strip() if identifier is not None else input_id(task_kind, prompt)
        if identifier in rows_by_id:
            raise InboxError(
                f"{where}: input_id {identifier!r} is already row {rows_by_id[identifier]} of this file; "
                "ids are unique within a file (an id derived from the prompt: the same question twice)"
            )
        rows_by_id[identifier] = number
        inputs.append((where, TaskInput(identifier, split, prompt, reference or "", meta_for_prompt(prompt))))
    combine_inputs([], inputs)  # no question twice under different ids
    return inputs


def combine_inputs(generated: Sequence[TaskInput], arrivals: Sequence[tuple[str, TaskInput]]) -> list[TaskInput]:
    """The task's own inputs plus inbox arrivals, in order, each input once.

    An arrival identical to an earlier input (same id, question, split and reference: a file sent
    again) is skipped. Refused, naming both places: an id reused for another question or with
    another split or reference, and a question (normalised prompt) already present under another id
    — in the other split, that would put an evaluation question into training or the reverse.
    """
    by_id: dict[str, tuple[str, TaskInput]] = {}
    by_prompt: dict[str, tuple[str, TaskInput]] = {}
    combined = []
    for where, item in [("the task's own inputs", i) for i in generated] + list(arrivals):
        prompt = normalize_prompt(item.prompt)
        if item.input_id in by_id:
            first_where, first = by_id[item.input_id]
            if normalize_prompt(first.prompt) != prompt:
                raise InboxError(
                    f"{where}: input_id {item.input_id!r} is already used for another question ({first_where}); "
                    "input ids are never reused, give this question a new id"
                )
            if (first.split, first.reference) != (item.split, item.reference):
                raise InboxError(
                    f"{where}: input_id {item.input_id!r} is already the {first.split} input with reference "
                    f"{first.reference!r} ({first_where}); this row puts it in the {item.split} split with "
                    f"reference {item.reference!r}, and a question is one input in one split"
                )
            continue
        if prompt in by_prompt:
            first_where, first = by_prompt[prompt]
            where_else = "the other split" if first.split != item.split else "the same split"
            raise InboxError(
                f"{where}: the same question is already the {first.split} input {first.input_id!r} "
                f"({first_where}), in {where_else}; a question is one input in one split"
            )
        by_id[item.input_id] = by_prompt[prompt] = (where, item)
        combined.append(item)
    return combined


def reject(path: Path, reason: str) -> Path:
    """Move a malformed file aside, with ``<name>.reason.txt`` beside it.

    Both stay inside the inbox folder (``<inbox>/<task>/rejected/``): a task folder or a
    ``rejected`` folder that leads elsewhere (a symlink) is refused.
    """
    inbox = path.parent.parent
    target_dir = path.parent / REJECTED
    if not (target_dir.resolve().parent == path.parent.resolve() and path.parent.resolve().parent == inbox.resolve()):
        raise InboxError(f"{target_dir}: refusing to write outside the inbox folder {inbox}")
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    atomic_write_text(target_dir / f"{path.name}.reason.txt", reason + "\n")
    shutil.move(str(path), target)
    return target


def listing_stamp(folder: Path) -> dict[str, list[int]]:
    """What the sensor remembers of a folder: each file's size and modification time."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in inbox_files(folder)}
