"""System 1 and System 2 methods, each a sequence of prompt steps (prompts are data)."""

from s2d_assets.methods.base import MethodDefinition, Step
from s2d_assets.methods.rar import RAR_1STEP, RAR_2STEP
from s2d_assets.methods.system1 import SYSTEM1, direct_prompt

METHODS: dict[str, MethodDefinition] = {m.kind: m for m in (SYSTEM1, RAR_1STEP, RAR_2STEP)}


def method_definition(kind: str) -> MethodDefinition:
    try:
        return METHODS[kind]
    except KeyError:
        raise KeyError(f"unknown method kind {kind!r}; known: {sorted(METHODS)}") from None


__all__ = ["METHODS", "SYSTEM1", "MethodDefinition", "Step", "direct_prompt", "method_definition"]
