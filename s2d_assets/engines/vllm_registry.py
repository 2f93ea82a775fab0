"""One vLLM ``LLM`` per process, shared by every vLLM engine that can use it.

vLLM reserves ``gpu_memory_utilization`` of the GPUs when an ``LLM`` starts, so a second ``LLM`` on
the same GPUs fails to start ("Free memory on device ... is less than desired GPU memory
utilization"), and ``LLM`` has no shutdown method. The evaluation's System 2 engine and its
distilled engine therefore share one ``LLM(enable_lora=True)``: base-model requests go out with
``lora_request=None`` and the distilled model's with its ``LoRARequest``.

When an engine needs a different ``LLM`` (another base model, or merged or fully fine-tuned weights),
the live one is shut down first. An engine whose ``LLM`` was replaced gets it back on its next call,
so engines never hold an ``LLM`` between calls.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)


class SharedLLM:
    """At most one live ``LLM``, identified by the arguments it was built with."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._key: Hashable | None = None
        self._llm: Any = None

    def get(self, key: Hashable, construct: Callable[[], Any]) -> Any:
        """The live ``LLM`` if it was built with ``key``; otherwise release it and build another."""
        with self._lock:
            if self._llm is not None and self._key == key:
                return self._llm
            if self._llm is not None:
                log.warning("vLLM: shutting down the engine built with %s to start one with %s", self._key, key)
                self._release()
            llm = construct()
            self._llm, self._key = llm, key
            return llm

    def release(self) -> None:
        """Shut the live ``LLM`` down (if any) and free its GPU memory."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        llm, self._llm, self._key = self._llm, None, None
        if llm is None:
            return
        # LLM has no shutdown; its engine core client has one (it stops the engine core process).
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(engine_core, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm, engine_core, shutdown
        gc.collect()
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency of the project
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


SHARED = SharedLLM()
