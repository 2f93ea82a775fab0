"""A method is a short sequence of steps; each step sees the question and earlier outputs.

Three kinds of step:

- an LLM ``Step`` renders its template from the fields so far and makes one call per chain;
  with ``for_each`` it fans out: one call per item of an earlier list field (``{item}``,
  ``{item_number}``), and its output becomes a list;
- a ``Parser`` on a step turns the step's output into named fields later steps can use
  (S2A's regenerated context and question, BSM's criteria);
- a ``Compute`` step is a pure function of the fields so far, with no LLM call (BSM's merge).

A step that ``continues`` an earlier step answers in the assistant's own turn: its request is
(user: the earlier step's prompt), (assistant: the earlier step's output, a new line, then this
step's rendered template, a cue such as "Therefore, the answer {answer_format} is"), and the model
continues that assistant message (every engine renders it so; one that cannot is refused at load).

Templates see ``{question}``, ``{answer_format}`` (the task's answer set as a phrase, e.g.
"(yes or no)"), the names of earlier steps and the fields their parsers provide; a template that
uses anything else is refused at import.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from s2d_assets.core.answer_set import CONSTRAINED, FREE, AnswerMode
from s2d_assets.core.fingerprint import content_hash

FieldValue = str | list[str]
Fields = Mapping[str, Any]
FAN_OUT_FIELDS = frozenset({"item", "item_number"})
# Fields every template may use: the input and the task's answer-format phrase.
BASE_FIELDS = frozenset({"question", "answer_format"})
# The answer-extraction cue that a continuing step appends to the assistant's own turn (Kojima et al.'s
# "Therefore, the answer (arabic numerals) is", with the task's answer set in the parentheses).
ANSWER_CUE = "Therefore, the answer {answer_format} is"


@dataclass(frozen=True)
class Parser:
    """Turns one step output into named fields. ``name`` identifies it in fingerprints."""

    name: str
    provides: tuple[str, ...]
    fn: Callable[[str], dict[str, FieldValue]]

    def __call__(self, output: str) -> dict[str, FieldValue]:
        parsed = self.fn(output)
        missing = set(self.provides) - set(parsed)
        if missing:
            raise ValueError(f"parser {self.name} did not provide {sorted(missing)}")
        return {key: parsed[key] for key in self.provides}


@dataclass(frozen=True)
class Step:
    """One LLM call per chain (per item with ``for_each``), formatted from the fields so far."""

    name: str
    template: str
    max_new_tokens: int
    parse: Parser | None = None
    for_each: str | None = None
    continues: str | None = None  # an earlier LLM step whose assistant turn this step's output continues

    def fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}

    def render(self, question: str, earlier: Fields) -> str:
        return self.template.format(**{**earlier, "question": question})

    def spec(self) -> tuple[Any, ...]:
        base: tuple[Any, ...] = (self.name, self.template, self.max_new_tokens)
        if self.parse is None and self.for_each is None and self.continues is None:
            return base
        extra = (self.parse.name if self.parse else None, self.for_each)
        return (*base, *extra, self.continues) if self.continues is not None else (*base, *extra)


@dataclass(frozen=True)
class Compute:
    """A step without an LLM call: ``fn(fields)`` returns new fields, including one named ``name``."""

    name: str
    fn: Callable[[Fields], dict[str, FieldValue]]
    uses: tuple[str, ...]
    provides: tuple[str, ...] = ()
    version: str = "1"

    def spec(self) -> tuple[Any, ...]:
        return ("compute", self.name, self.uses, self.provides, self.version)


AnyStep = Step | Compute


@dataclass(frozen=True)
class MethodDefinition:
    kind: str
    description: str
    steps: tuple[AnyStep, ...]
    params: dict[str, Any] = field(default_factory=dict)
    slots: tuple[str, ...] = ()  # template fields filled once per experiment (e.g. few-shot exemplars)
    # The LLM step whose output is the final answer alone (System 1's answer, CoT's extraction): the
    # one step ``answer: constrained`` constrains to the task's answer set. None: no such step.
    answer_step: str | None = None
    answer: AnswerMode = FREE

    def __post_init__(self) -> None:
        seen = {*BASE_FIELDS, *self.slots}
        turns: set[str] = set()  # LLM steps whose turn a later step may continue
        for step in self.steps:
            if (
                isinstance(step, Step)
                and step.continues is not None
                and (step.continues not in turns or step.for_each is not None)
            ):
                raise ValueError(
                    f"method {self.kind}: step {step.name!r} continues {step.continues!r}, which is not an "
                    "earlier LLM step of one call per chain that is not itself a continuation"
                )
            if isinstance(step, Step) and step.for_each is None and step.continues is None:
                turns.add(step.name)
            if isinstance(step, Compute):
                needed = set(step.uses)
            else:
                needed = step.fields() - (FAN_OUT_FIELDS if step.for_each else set())
                if step.for_each is not None and step.for_each not in seen:
                    raise ValueError(
                        f"method {self.kind}: step {step.name!r} fans out over {step.for_each!r}, "
                        "which no earlier step produces"
                    )
            missing = needed - seen
            if missing:
                raise ValueError(
                    f"method {self.kind}: step {step.name!r} uses {sorted(missing)}, which no earlier step produces"
                )
            seen.add(step.name)
            seen.update(step.provides if isinstance(step, Compute) else (step.parse.provides if step.parse else ()))

    def template_problems(self, step_name: str, template: str) -> list[str]:
        """Why ``template`` cannot replace step ``step_name``'s prompt (empty when it can).

        It may use the fields the step sees (``{question}``, the slots, earlier steps and their
        parsed fields, ``{item}``/``{item_number}`` in a fan-out step), and must keep the ones that
        carry the input: ``{question}`` when the shipped template uses it, else every field the
        shipped template takes from the input (e.g. S2A's ``{context}`` and ``{query}``).
        """
        seen = {*BASE_FIELDS, *self.slots}
        llm_steps: set[str] = set()
        for step in self.steps:
            if step.name == step_name:
                break
            seen.add(step.name)
            if isinstance(step, Compute):
                seen.update(step.provides)
            else:
                llm_steps.add(step.name)
                seen.update(step.parse.provides if step.parse else ())
        else:
            return [f"method {self.kind} has no step {step_name!r}"]
        if not isinstance(step, Step):
            return [f"step {step_name!r} of {self.kind} makes no LLM call and has no prompt"]
        allowed = seen | (FAN_OUT_FIELDS if step.for_each else set())
        default = step.fields()
        required = {"question"} if "question" in default else default - llm_steps - set(self.slots) - BASE_FIELDS
        if step.continues is not None:  # the continued turn carries the input; the cue may be anything
            required = set()
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as error:
            return [f"broken placeholder: {error} (write a literal brace as {{{{ or }}}})"]
        used = set()
        problems = []
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or name.isdigit():
                problems.append(f"positional placeholder {{{name}}}; name the field, e.g. {{question}}")
            elif conversion or spec:
                problems.append(f"placeholder {{{name}}} takes no conversion or format spec")
            used.add(name)
        unknown = used - allowed - {""} - {n for n in used if n.isdigit()}
        if unknown:
            problems.append(
                f"unknown placeholder(s) {', '.join('{' + n + '}' for n in sorted(unknown))}; "
                f"this step can use {', '.join('{' + n + '}' for n in sorted(allowed))}"
            )
        missing = required - used
        if missing:
            problems.append(
                f"the prompt must contain {', '.join('{' + n + '}' for n in sorted(missing))}, "
                "which carries the input; without it the model never sees the question"
            )
        return problems

    @property
    def needs_continuation(self) -> bool:
        """Whether a step answers in the assistant's own turn (the engine must continue a message)."""
        return any(isinstance(step, Step) and step.continues is not None for step in self.steps)

    @property
    def prompt_steps(self) -> tuple[Step, ...]:
        """The LLM steps, whose prompts and budgets an experiment may override."""
        return tuple(step for step in self.steps if isinstance(step, Step))

    def with_overrides(self, prompts: dict[str, str], max_new_tokens: dict[str, int]) -> MethodDefinition:
        steps = tuple(
            replace(
                step,
                template=prompts.get(step.name, step.template),
                max_new_tokens=max_new_tokens.get(step.name, step.max_new_tokens),
            )
            if isinstance(step, Step)
            else step
            for step in self.steps
        )
        return replace(self, steps=steps)

    def bind(self, values: dict[str, str]) -> MethodDefinition:
        """Fill the slots into every template (the text is inserted literally, braces and all)."""
        unknown = set(values) - set(self.slots)
        if unknown:
            raise ValueError(f"method {self.kind}: no slot(s) {sorted(unknown)}; slots are {list(self.slots)}")
        escaped = {key: value.replace("{", "{{").replace("}", "}}") for key, value in values.items()}
        steps = tuple(
            replace(step, template=_fill(step.template, escaped)) if isinstance(step, Step) else step
            for step in self.steps
        )
        return replace(self, steps=steps, slots=tuple(s for s in self.slots if s not in values))

    def with_answer(self, mode: AnswerMode) -> MethodDefinition:
        """The method with its final answer free or constrained (only a method with an answer step constrains)."""
        if mode == CONSTRAINED and self.answer_step not in {step.name for step in self.prompt_steps}:
            raise ValueError(
                f"method {self.kind} has no step that states only the final answer, so its answer cannot be "
                "constrained (its last step reasons and answers in one output)"
            )
        return replace(self, answer=mode)

    @property
    def fingerprint(self) -> str:
        """Everything that shapes this method's generations: templates, budgets, parsers, params, answer mode."""
        spec: dict[str, Any] = {"kind": self.kind, "steps": [s.spec() for s in self.steps], "params": self.params}
        if self.answer == CONSTRAINED:  # free-form fingerprints are the ones from before the option existed
            spec |= {"answer": self.answer, "answer_step": self.answer_step}
        return content_hash(spec)


def _fill(template: str, values: dict[str, str]) -> str:
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if name in values:
            out.append(values[name])
        else:
            out.append("{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}")
    return "".join(out)
