"""Exclusive file locks between s2d processes (``flock``).

The kernel releases a ``flock`` when its holder exits, however it exits (``kill -9`` included),
so a lock file never outlives the process that held it and needs no clean-up.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s2d_assets.core.errors import StateError


def acquire(path: Path, timeout: float, held_for: str) -> int:
    """Wait up to ``timeout`` seconds for the lock on ``path``; return its descriptor (pass it to ``release``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise StateError(
                    f"{path}: another s2d process has held {held_for} for over {timeout:.0f}s; "
                    "wait for it to finish (or end it) and retry"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def exclusive(path: Path, timeout: float, held_for: str) -> Iterator[None]:
    """Hold the lock on ``path`` for the ``with`` block."""
    fd = acquire(path, timeout, held_for)
    try:
        yield
    finally:
        release(fd)
