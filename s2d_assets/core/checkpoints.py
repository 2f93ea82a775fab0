"""Checkpoint directories: content-addressed, written atomically, with a model card.

A checkpoint lives at ``<root>/<version>/`` where ``version`` hashes everything that shapes
it (base model, training data, training parameters). It is trained in a staging directory
beside it and renamed into place only when complete, then the ``current`` link is swapped
atomically; a crash leaves the previous checkpoint and link untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from s2d_assets.core.fingerprint import files_hash

MANIFEST = "s2d_checkpoint.json"
CURRENT = "current"


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    return dict(json.loads((checkpoint / MANIFEST).read_text()))


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / MANIFEST).is_file()


@contextmanager
def staging_dir(root: Path) -> Iterator[Path]:
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
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
    (directory / "README.md").write_text(text)


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
            write_card(staging, card)
            weights = [p for p in staging.rglob("*") if p.is_file()]
            manifest = {**card, "version": version, "fingerprint": files_hash(weights, staging)}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            if final.exists() and not is_complete(final):  # an incomplete leftover from an older crash
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
    temporary = root / f".{CURRENT}-{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(version)
    os.replace(temporary, link)
