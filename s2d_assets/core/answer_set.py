"""A closed-form task's answer set: what a constrained final answer may be, declared once.

Either a list of ``choices`` (the answer is exactly one of them) or a ``regex`` the whole answer
matches. Tasks declare it (``tasks/base.py: answer_set``); engines turn it into their library's
form: xgrammar in the transformers engine, vLLM's structured outputs, a server's grammar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

AnswerMode = Literal["free", "constrained"]
FREE: AnswerMode = "free"
CONSTRAINED: AnswerMode = "constrained"

_RULE_NAME = re.compile(r"\broot(?:_\d+)+\b")  # the names xgrammar gives a regex's rules


@dataclass(frozen=True)
class AnswerSet:
    choices: tuple[str, ...] = ()
    regex: str | None = None

    def __post_init__(self) -> None:
        if bool(self.choices) == (self.regex is not None):
            raise ValueError("an answer set has either choices or a regex")
        if any(not choice for choice in self.choices):
            raise ValueError("an answer set's choices are non-empty strings")
        if self.regex is not None:
            re.compile(self.regex)

    @classmethod
    def of(cls, *choices: str) -> AnswerSet:
        return cls(choices=tuple(choices))

    @property
    def pattern(self) -> str:
        """One regular expression for the set (choices escaped and joined)."""
        if self.regex is not None:
            return self.regex
        return "|".join(re.escape(choice) for choice in self.choices)

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.pattern, text) is not None

    def as_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)} if self.choices else {"regex": self.regex}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerSet:
        return cls(choices=tuple(data.get("choices") or ()), regex=data.get("regex"))

    def ebnf(self) -> str:
        """The set as a GBNF/EBNF grammar (llama.cpp's ``grammar``; the syntax xgrammar reads too).

        Choices become string literals; a regex is converted by xgrammar, whose EBNF is the GBNF syntax.
        """
        if self.choices:
            return "root ::= " + " | ".join(json.dumps(choice, ensure_ascii=False) for choice in self.choices)
        import xgrammar

        # xgrammar names its rules root_1, root_2...; llama.cpp's grammar parser takes letters, digits and
        # dashes in a rule name only (an underscore made its server fail to parse, and crash).
        return _RULE_NAME.sub(lambda m: m.group().replace("_", "-"), str(xgrammar.Grammar.from_regex(self.pattern)))
