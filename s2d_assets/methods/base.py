"""A method is a short sequence of prompt steps; each step sees the question and earlier outputs."""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import Any

from s2d_assets.fingerprint import content_hash


@dataclass(frozen=True)
class Step:
    """One LLM call per chain. ``template`` is formatted with ``question`` and earlier step names."""

    name: str
    template: str
    max_new_tokens: int

    def fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}

    def render(self, question: str, earlier: dict[str, str]) -> str:
        return self.template.format(question=question, **earlier)


@dataclass(frozen=True)
class MethodDefinition:
    kind: str
    description: str
    steps: tuple[Step, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen = {"question"}
        for step in self.steps:
            missing = step.fields() - seen
            if missing:
                raise ValueError(
                    f"method {self.kind}: step {step.name!r} uses {sorted(missing)}, which no earlier step produces"
                )
            seen.add(step.name)

    def with_overrides(self, prompts: dict[str, str], max_new_tokens: dict[str, int]) -> MethodDefinition:
        steps = tuple(
            replace(
                step,
                template=prompts.get(step.name, step.template),
                max_new_tokens=max_new_tokens.get(step.name, step.max_new_tokens),
            )
            for step in self.steps
        )
        return replace(self, steps=steps)

    @property
    def fingerprint(self) -> str:
        """Everything that shapes this method's generations: templates, budgets, params."""
        return content_hash(
            {
                "kind": self.kind,
                "steps": [(s.name, s.template, s.max_new_tokens) for s in self.steps],
                "params": self.params,
            }
        )
