"""The warehouse's read snapshot: a copy readers open, so that no reader ever blocks a run.

DuckDB lets one process open a database file for writing, and while it does no other process
may open the file at all, not even read-only. So nothing but s2d's own short write connections
opens ``warehouse.duckdb``. After every committed write the warehouse file is copied to
``warehouse.read.duckdb``: to a temporary file first, then renamed over the snapshot, so a reader
sees the previous snapshot or the new one, never half of one. A reader holding the snapshot open
keeps the copy it opened; the next query sees the newer one. ``s2d sql``, ``s2d results`` and
any DuckDB client (``duckdb -readonly .s2d/warehouse.read.duckdb``) read the snapshot.

The copy must not overlap another process's write. Every s2d connection that can write takes
an exclusive lock (``flock``) on ``.warehouse.duckdb.lock`` for as long as it is open; the copy
is made after the last such connection of this process has closed (so DuckDB has checkpointed
everything into the file) and before the lock is released. Copying is cheap next to a stage:
about 80 ms for a 260 MB warehouse (DuckDB's own ``COPY FROM DATABASE`` took 7 s).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from s2d_assets.core.locks import acquire, release

SNAPSHOT_SUFFIX = ".read.duckdb"


def snapshot_path(warehouse: Path) -> Path:
    """``warehouse.duckdb`` -> ``warehouse.read.duckdb``."""
    return warehouse.with_name(warehouse.stem + SNAPSHOT_SUFFIX)


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(f".{warehouse.name}.lock")


@dataclass
class _Holder:
    fd: int
    count: int = 1
    dirty: bool = False


_held: dict[Path, _Holder] = {}
_guard = threading.Lock()


@contextmanager
def writer_lock(warehouse: Path, timeout: float) -> Iterator[None]:
    """Hold the warehouse's writer lock (re-entrant within the process); publish the snapshot on release if dirty."""
    key = warehouse.resolve()
    with _guard:
        holder = _held.get(key)
        if holder is not None:
            holder.count += 1
    if holder is None:
        holder = _Holder(acquire(lock_path(warehouse), timeout, "the warehouse"))
        with _guard:
            _held[key] = holder
    try:
        yield
    finally:
        with _guard:
            holder.count -= 1
            last = holder.count == 0
            if last:
                del _held[key]
        if last:
            try:
                if holder.dirty:
                    publish(warehouse)
            finally:
                release(holder.fd)


def mark_written(warehouse: Path) -> None:
    """A write committed: publish the snapshot when this process's last connection closes."""
    with _guard:
        holder = _held.get(warehouse.resolve())
        if holder is not None:
            holder.dirty = True


def is_stale(warehouse: Path) -> bool:
    """The snapshot is missing, or the warehouse (or its write-ahead log) changed after it was copied."""
    target = snapshot_path(warehouse)
    if not target.exists():
        return True
    copied = target.stat().st_mtime_ns
    wal = warehouse.with_name(warehouse.name + ".wal")
    return warehouse.stat().st_mtime_ns > copied or (wal.exists() and wal.stat().st_mtime_ns > copied)


def publish(warehouse: Path) -> Path:
    """Copy the warehouse to its snapshot atomically. Call with the writer lock held and no connection open."""
    target = snapshot_path(warehouse)
    temporary = target.with_name(f".{target.name}.pid{os.getpid()}.tmp")
    try:
        shutil.copyfile(warehouse, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
