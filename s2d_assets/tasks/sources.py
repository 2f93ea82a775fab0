"""What each task reads from outside the experiment file: its sources, and their data versions.

A task's inputs are a function of its settings (the experiment file, recorded as the code
version of ``raw_inputs``) *and* of the files it reads. Each file or data package is a
``Source`` here; its data version is a hash of the file's bytes (a directory: every file's
relative path and bytes), or ``"<package>==<version>"`` for data shipped inside an installed
package. The inbox folder of a task is a source too: a hash of its listing and every file's bytes.
Plain Python; ``defs/sources.py`` turns each into an observable source asset.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2d_assets.tasks.inbox import inbox_files
from s2d_assets.tasks.user_files import TaskFileError, resolve_path

NAMES = "names"  # the census name lists (last_letter, coin_flip, GSM-IC distractor sentences)
REASONING_GYM = "reasoning-gym"  # gsm_symbolic's generator and templates
INBOX = "inbox"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One thing a task reads: a file or folder (``path``), a data package (``package``) or its inbox."""

    name: str  # the last part of the asset key is ``source_<name>``
    description: str
    path: Path | None = None
    package: str | None = None
    inbox: bool = False

    def data_version(self) -> str:
        if self.package is not None:
            return package_version(self.package)
        assert self.path is not None
        if self.inbox:
            return inbox_version(self.path)
        return file_version(self.path)

    def metadata(self) -> dict[str, Any]:
        """What the UI shows next to the observation."""
        if self.package is not None:
            return {"package": self.package}
        assert self.path is not None
        if self.inbox:
            return {"path": str(self.path), "files": len(inbox_files(self.path))}
        return {"path": str(self.path), "bytes": _size(self.path)}


def package_version(distribution: str) -> str:
    try:
        return f"{distribution}=={importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        raise TaskFileError(
            f"the {distribution!r} package is not installed (pip install --no-deps {distribution})"
        ) from None


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def file_version(path: Path) -> str:
    """sha256 of a file's bytes; of a folder (a ``datasets`` directory): every file's relative path and bytes."""
    if not path.exists():
        raise TaskFileError(f"{path}: task file not found")
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            _hash_file(digest, file)
            digest.update(b"\0")
    else:
        _hash_file(digest, path)
    return digest.hexdigest()[:16]


def inbox_version(folder: Path) -> str:
    """sha256 of the inbox folder's listing and every file's bytes (an empty or absent folder: one constant)."""
    digest = hashlib.sha256(b"inbox\0")
    for file in inbox_files(folder):
        digest.update(file.name.encode() + b"\0")
        _hash_file(digest, file)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def file_source(path: str | Path, what: str) -> Source:
    resolved = resolve_path(path) if isinstance(path, str) else path
    return Source("file", f"{what}: {resolved} (data version: a hash of its bytes)", path=resolved)


def package_source(distribution: str, what: str) -> Source:
    name = distribution.replace("-", "_")
    return Source(
        name, f"{what}, from the installed {distribution!r} package (data version: its version)", package=distribution
    )


def task_sources(spec: Any) -> list[Source]:
    """Every file or data package the task of ``spec`` reads to build its inputs (the inbox aside)."""
    from s2d_assets.tasks import build_task

    return build_task(spec).sources()


def coconut_sources() -> list[Source]:
    """ProsQA and ProntoQA are generated; they read the census first names (people in the graphs)."""
    return [package_source(NAMES, "census first names")]


def inbox_source(inbox_root: Path, task: str) -> Source:
    folder = inbox_root / task
    return Source(
        INBOX, f"new inputs dropped into {folder} (data version: a hash of its files)", path=folder, inbox=True
    )


def all_sources(spec: Any, inbox_root: Path, task: str) -> list[Source]:
    """The task's sources and its inbox folder."""
    return [*task_sources(spec), inbox_source(inbox_root, task)]
