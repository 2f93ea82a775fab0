"""Checkpoint directories: content-addressed, written atomically, with a model card.

A checkpoint lives at ``<root>/<version>/`` where ``version`` hashes everything that shapes
it (base model, training data, training parameters). It is trained in a staging directory
beside it and renamed into place only when complete, then the ``current`` link is swapped
atomically; a crash leaves the previous checkpoint and link untouched.

The manifest (``s2d_checkpoint.json``) is the marker that a checkpoint is finished. It is
validated whenever it is read: a checkpoint whose manifest is missing, does not parse or names
another version is not finished — training rebuilds it, and a reader gets a ``StateError`` that
names the file and says how to fix it. Staging folders and temporary links carry the id of the
process that made them (``-pid<n>``); ``clean_staging`` removes those of processes that are gone
(a run killed with ``kill -9``) when the next run starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import StateError, one_line
from s2d_assets.core.faults import fault_point
from s2d_assets.core.fingerprint import files_hash
from s2d_assets.core.process import pid_alive

if TYPE_CHECKING:
    from s2d_assets.core.paths import StatePaths

MANIFEST = "s2d_checkpoint.json"
CURRENT = "current"
STAGING = ".staging-"
# A temporary name made by a process: ".staging-pid12-x", ".current-pid12", ".<model>-pid12-x", "....pid12.tmp"
_TEMPORARY = re.compile(r"^\..*[.-]pid(\d+)(?:[.-]|$)")


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's manifest, validated; a ``StateError`` names the file and the fix when it is not whole."""
    path = checkpoint.resolve() / MANIFEST  # through the `current` link: the file itself
    version = path.parent.name
    fix = f"delete {checkpoint.resolve()} and materialise its checkpoint asset again (`s2d refresh`)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path}: missing, so the checkpoint was never finished; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StateError(f"{path}: damaged checkpoint marker ({one_line(str(error))}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str) or data.get("version") != version:
        raise StateError(f"{path}: not a marker of checkpoint {version} (no fingerprint or another version); {fix}")
    return data


def is_complete(checkpoint: Path) -> bool:
    """Finished: its manifest parses and names it. A damaged marker means not finished."""
    try:
        read_manifest(checkpoint)
    except StateError:
        return False
    return True


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files and folders directly in ``folder`` left by processes that are gone."""
    if not folder.is_dir():
        return []
    stale = []
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        # A staging folder without a pid was made before staging names carried one.
        if not pid_alive(int(match.group(1))) if match else path.name.startswith(STAGING):
            stale.append(path)
    return stale


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_staging(paths: StatePaths) -> list[Path]:
    """Remove what killed runs left in the state folder: staging folders, temporary links and files."""
    folders = [
        paths.root,
        paths.models,
        *(d for d in paths.checkpoints.rglob("*") if d.is_dir() and not d.is_symlink()),
    ]
    removed = [path for folder in folders for path in stale_temporaries(folder)]
    for path in removed:
        _remove(path)
    return removed


@contextmanager
def staging_dir(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    for leftover in stale_temporaries(root):
        _remove(leftover)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}pid{os.getpid()}-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_model_card(directory: Path, card: dict[str, Any]) -> None:
    header = {
        "base_model": card.get("base_model"),
        "library_name": "peft" if card.get("mode") == "lora" else "transformers",
        "tags": ["s2d", "system-2-distillation", "trl", "sft"],
    }
    lineage = "\n".join(f"| {key} | {value} |" for key, value in card.items())
    text = (
        f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n"
        f"# Distilled System 1: {card.get('task')} / {card.get('method')}\n\n"
        "Fine-tuned with TRL's SFTTrainer on (input -> final answer) pairs that the base model's System 2 "
        "method agreed on with itself (self-consistency), with no intermediate reasoning tokens.\n\n"
        "## Lineage\n\n| field | value |\n|---|---|\n" + lineage + "\n"
    )
    atomic_write_text(directory / "README.md", text)


def publish_checkpoint(
    root: Path,
    version: str,
    train: Callable[[Path], None],
    card: dict[str, Any],
    write_card: Callable[[Path, dict[str, Any]], None] = write_model_card,
) -> Path:
    """Return ``root/version``, training it into a staging directory first if it does not exist."""
    final = root / version
    if not is_complete(final):
        with staging_dir(root) as staging:
            train(staging)
            # The fingerprint (what generations by this model are cached under) covers what training wrote,
            # not the card: the card's lineage names runs and history, which differ between two runs that
            # train the same weights (a run resumed after a kill, say).
            weights = [p for p in staging.rglob("*") if p.is_file()]
            fingerprint = files_hash(weights, staging)
            write_card(staging, card)
            manifest = {**card, "version": version, "fingerprint": fingerprint}
            atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2, default=str))
            fault_point("training:before_publish")  # test hook: trained, not yet renamed into place
            if final.exists() and not is_complete(final):  # an unfinished or damaged leftover: rebuilt
                shutil.rmtree(final)
            try:
                staging.rename(final)
            except OSError:
                # A concurrent run published the same version first; its content is the same.
                if not is_complete(final):
                    raise
    _point_current(root, version)
    return final


def _point_current(root: Path, version: str) -> None:
    link = root / CURRENT
    temporary = root / f".{CURRENT}-pid{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(version)
    os.replace(temporary, link)
