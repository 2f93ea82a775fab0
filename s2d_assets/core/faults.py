"""A test hook for fault injection: SIGKILL this process at a named point of a run.

``S2D_FAULT_POINT=<point>:<n>`` kills the process (``SIGKILL``, as ``kill -9`` would) the
``n``-th time it reaches ``<point>``; without the variable the hook does nothing. The points:

- ``generation:after_batch`` — a generation batch was committed to the cache;
- ``generation:before_commit`` — a batch was generated but not yet committed;
- ``warehouse:in_transaction`` — a stage's write transaction has deleted its old rows and not
  yet committed the new ones;
- ``training:before_publish`` — a checkpoint is trained in its staging folder, not yet renamed
  into place.

Used by ``s2d_assets_tests/test_faults.py`` only.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "S2D_FAULT_POINT"
_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, count = spec.rpartition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
