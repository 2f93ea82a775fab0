"""System 1 and System 2 methods, each a sequence of prompt steps (prompts are data).

Each kind's definition is registered in ``config/methods.py`` (``METHODS``).
"""

from __future__ import annotations

from pathlib import Path

from s2d_assets.config.methods import METHODS
from s2d_assets.methods.base import Compute, MethodDefinition, Parser, Step
from s2d_assets.methods.cot import load_exemplars
from s2d_assets.methods.system1 import SYSTEM1, direct_prompt, system1_for


def method_definition(kind: str) -> MethodDefinition:
    """The method the registry (``config/methods.py``'s ``METHODS``) names for ``kind``."""
    method: MethodDefinition = METHODS.implementation(kind)
    return method


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
