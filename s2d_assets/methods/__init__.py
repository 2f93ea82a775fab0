"""System 1 and System 2 methods, each a sequence of prompt steps (prompts are data)."""

from __future__ import annotations

from pathlib import Path

from s2d_assets.methods.base import Compute, MethodDefinition, Parser, Step
from s2d_assets.methods.bsm import BSM
from s2d_assets.methods.cot import COT_FEW_SHOT, COT_ZERO_SHOT, load_exemplars
from s2d_assets.methods.rar import RAR_1STEP, RAR_2STEP
from s2d_assets.methods.s2a import S2A_METHODS
from s2d_assets.methods.system1 import SYSTEM1, direct_prompt, system1_for

METHODS: dict[str, MethodDefinition] = {
    m.kind: m for m in (SYSTEM1, RAR_1STEP, RAR_2STEP, COT_ZERO_SHOT, COT_FEW_SHOT, *S2A_METHODS, BSM)
}


def method_definition(kind: str) -> MethodDefinition:
    try:
        return METHODS[kind]
    except KeyError:
        raise KeyError(f"unknown method kind {kind!r}; known: {sorted(METHODS)}") from None


def build_method(
    kind: str,
    prompts: dict[str, str] | None = None,
    max_new_tokens: dict[str, int] | None = None,
    exemplars: Path | None = None,
) -> MethodDefinition:
    """The method as an experiment configures it: overrides applied, slots (exemplars) filled."""
    method = method_definition(kind).with_overrides(prompts or {}, max_new_tokens or {})
    if "exemplars" in method.slots:
        if exemplars is None:
            raise ValueError(f"method {kind} needs an exemplar file (exemplars: path/to/file.jsonl)")
        method = method.bind({"exemplars": load_exemplars(exemplars)})
    return method


__all__ = [
    "METHODS",
    "SYSTEM1",
    "Compute",
    "MethodDefinition",
    "Parser",
    "Step",
    "build_method",
    "direct_prompt",
    "method_definition",
    "system1_for",
]
