"""Perturbed variants of an input, each with a map from its answers back to the original's.

Variant 0 is the input itself. An empty answer map is the identity (a rewording that keeps
the answer); otherwise an answer missing from the map cannot be mapped back (``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from s2d_assets.tasks.answers import OPTION_LINE


@dataclass(frozen=True)
class Variant:
    prompt: str
    answer_map: dict[str, str] = field(default_factory=dict)
    perturbation: str = "identity"


Perturbation = Callable[[str, dict[str, Any]], "Variant | None"]


def map_back(answer: str | None, answer_map: dict[str, str]) -> str | None:
    if answer is None or not answer_map:
        return answer
    return answer_map.get(answer)


def swap_options(prompt: str, answer_format: str = "({})") -> Variant | None:
    """Swap the texts of a two-option question's (A)/(B) lines; answers map (A) <-> (B)."""
    lines = list(OPTION_LINE.finditer(prompt))
    if len(lines) != 2:
        return None
    (first, second) = lines
    a, b = first.group(1), second.group(1)
    swapped = (
        prompt[: first.start(2)]
        + second.group(2)
        + prompt[first.end(2) : second.start(2)]
        + first.group(2)
        + prompt[second.end(2) :]
    )
    answer_a, answer_b = answer_format.format(a), answer_format.format(b)
    return Variant(swapped, {answer_a: answer_b, answer_b: answer_a}, "option_swap")
