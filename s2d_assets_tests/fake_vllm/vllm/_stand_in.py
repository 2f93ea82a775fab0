"""What the contract tests inspect about the stand-in (not part of vLLM's API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GPU_TOTAL_GIB = 80.0


@dataclass
class State:
    constructed: list[dict[str, Any]] = field(default_factory=list)  # LLM keyword arguments, in order
    reserved: dict[int, float] = field(default_factory=dict)  # live LLM id -> GiB reserved
    max_alive: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)  # one per chat(): prompts, params, lora


STATE = State()


def reset() -> None:
    STATE.constructed.clear()
    STATE.reserved.clear()
    STATE.calls.clear()
    STATE.max_alive = 0


def alive() -> int:
    return len(STATE.reserved)
