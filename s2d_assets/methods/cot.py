"""Chain-of-Thought: zero-shot (Kojima et al., 2022) and few-shot from exemplars (Wei et al., 2022).

Zero-shot is Kojima et al.'s two stages: reason after "Let's think step by step.", then a
second call in the assistant's own turn: the model continues its reasoning after the cue
"Therefore, the answer {answer_format} is" (``ANSWER_CUE``; the task names its answer set). Few-shot prepends worked
exemplars from a JSONL file (``question``, ``reasoning``, ``answer`` per line).
"""

from __future__ import annotations

import json
from pathlib import Path

from s2d_assets.core.errors import UserError
from s2d_assets.methods.base import ANSWER_CUE, MethodDefinition, Step

COT_REASON_TEMPLATE = "{question}\nLet's think step by step."
COT_EXTRACT_TEMPLATE = ANSWER_CUE

COT_FEW_SHOT_TEMPLATE = "{exemplars}Q: {question}\nA:"
EXEMPLAR_TEMPLATE = "Q: {question}\nA: {reasoning} The answer is {answer}.\n\n"
EXEMPLAR_FIELDS = ("question", "reasoning", "answer")

COT_ZERO_SHOT = MethodDefinition(
    kind="cot_zero_shot",
    description="Chain-of-Thought, zero-shot: reason step by step, then extract the final answer",
    steps=(
        Step(name="reason", template=COT_REASON_TEMPLATE, max_new_tokens=192),
        Step(name="extract", template=COT_EXTRACT_TEMPLATE, max_new_tokens=24, continues="reason"),
    ),
    answer_step="extract",
)

COT_FEW_SHOT = MethodDefinition(
    kind="cot_few_shot",
    description="Chain-of-Thought, few-shot: worked exemplars from a file, then the question",
    steps=(Step(name="answer", template=COT_FEW_SHOT_TEMPLATE, max_new_tokens=192),),
    slots=("exemplars",),
)


class ExemplarError(UserError):
    """A malformed exemplar file; the message names the file and the line."""


def load_exemplars(path: Path) -> str:
    """Render a JSONL exemplar file into the few-shot prefix; refuse it whole if any line is bad."""
    if not path.is_file():
        raise ExemplarError(f"{path}: exemplar file not found")
    blocks = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExemplarError(f"{path}: not UTF-8 text (offset {error.start}); save the file as UTF-8") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ExemplarError(f"{path}: line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ExemplarError(f"{path}: line {number}: expected an object with {list(EXEMPLAR_FIELDS)}")
        missing = [key for key in EXEMPLAR_FIELDS if not isinstance(row.get(key), str | int | float)]
        if missing:
            raise ExemplarError(f"{path}: line {number}: missing or non-text field(s) {missing}")
        blocks.append(EXEMPLAR_TEMPLATE.format(**{key: str(row[key]).strip() for key in EXEMPLAR_FIELDS}))
    if not blocks:
        raise ExemplarError(f"{path}: no exemplars")
    return "".join(blocks)
