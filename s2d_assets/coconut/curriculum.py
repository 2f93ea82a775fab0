"""Coconut's training sequences: the curriculum, the label masks and batches aligned on the thoughts.

A record ``{question, steps, answer}`` becomes, for each system::

    cot        question  step1 … stepN  ### answer <eos>
    no_cot     question  ### answer <eos>
    coconut k  question <bot> <latent>×(k·c) <eot> step(k+1) … stepN ### answer <eos>
    pause      question <bot> <pause>×n <eot> ### answer <eos>

At the last stage every remaining language step is dropped too, so inference always uses
``max_stage·c`` thoughts. Labels are -100 on the question, the markers and the thoughts: the
loss is on the language that follows. Batches are left-padded so that every row's ``<bot>``
(or the end of its question) sits in the same column, hence thought ``j`` of every row is in
column ``thought_start + j`` and one forward pass per thought serves the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

IGNORE = -100
BOT, EOT, LATENT, PAUSE = "<bot>", "<eot>", "<latent>", "<pause>"
SPECIAL_TOKENS = (BOT, EOT, LATENT, PAUSE)
SYSTEMS = ("no_cot", "cot", "pause", "coconut")
Mode = Literal["no_cot", "cot", "pause", "coconut"]


@dataclass(frozen=True)
class TokenIds:
    bot: int
    eot: int
    latent: int
    pause: int
    eos: int
    pad: int

    @classmethod
    def of(cls, tokenizer: Any) -> TokenIds:
        ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
        unk = getattr(tokenizer, "unk_token_id", None)
        if any(i is None or i == unk for i in ids):
            raise ValueError(f"tokenizer lacks the Coconut tokens {SPECIAL_TOKENS}; build the model with init_model")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls(*ids, eos=tokenizer.eos_token_id, pad=pad)


@dataclass(frozen=True)
class Tokenized:
    question: list[int]
    steps: list[list[int]]
    answer: list[int]  # "### answer" and <eos>


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    prefix_len: int  # tokens before the first thought (question, and <bot> when present): the alignment column
    n_thoughts: int  # continuous thoughts (coconut) or pause tokens (pause) right after the prefix


def tokenize(record: dict[str, Any], tokenizer: Any) -> Tokenized:
    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return Tokenized(
        question=encode(record["question"] + "\n"),
        steps=[encode(step + "\n") for step in record["steps"]],
        answer=[*encode("### " + record["answer"]), tokenizer.eos_token_id],
    )


def build_example(
    item: Tokenized, ids: TokenIds, mode: Mode, stage: int = 0, c: int = 1, max_stage: int = 0
) -> Example:
    """The training sequence of one record for ``mode`` (and curriculum ``stage`` for coconut)."""
    if mode == "coconut":
        if not 0 <= stage <= max_stage:
            raise ValueError(f"coconut stage {stage} is outside 0..{max_stage}")
        n_thoughts = stage * c
        steps = [] if stage == max_stage and stage > 0 else item.steps[stage:]
    elif mode == "pause":
        n_thoughts, steps = max_stage * c, []
    else:
        n_thoughts, steps = 0, (item.steps if mode == "cot" else [])
    marker = mode in ("coconut", "pause")
    thought = ids.latent if mode == "coconut" else ids.pause
    prefix = [*item.question, *([ids.bot] if marker else [])]
    hidden = [*prefix, *([thought] * n_thoughts), *([ids.eot] if marker else [])]
    target = [token for step in steps for token in step] + item.answer
    return Example(
        input_ids=hidden + target,
        labels=[IGNORE] * len(hidden) + target,
        prefix_len=len(prefix),
        n_thoughts=n_thoughts,
    )


def build_prompt(item: Tokenized, ids: TokenIds, mode: Mode, n_thoughts: int) -> Example:
    """What the model sees at inference: the question, and for coconut/pause the fixed thoughts."""
    marker = mode in ("coconut", "pause")
    thought = ids.latent if mode == "coconut" else ids.pause
    prefix = [*item.question, *([ids.bot] if marker else [])]
    tokens = [*prefix, *([thought] * n_thoughts), ids.eot] if marker else prefix
    return Example(tokens, [IGNORE] * len(tokens), len(prefix), n_thoughts if marker else 0)


def curriculum(items: Sequence[Tokenized], ids: TokenIds, stage: int, c: int, max_stage: int) -> list[Example]:
    return [build_example(item, ids, "coconut", stage, c, max_stage) for item in items]


def collate(examples: Sequence[Example], pad: int) -> dict[str, Any]:
    """Tensors for a batch, left-padded to align the prefixes and right-padded to one length."""
    import torch

    align = max(e.prefix_len for e in examples)
    lefts = [align - e.prefix_len for e in examples]
    width = max(left + len(e.input_ids) for left, e in zip(lefts, examples, strict=True))
    input_ids, labels, mask = [], [], []
    for left, e in zip(lefts, examples, strict=True):
        right = width - left - len(e.input_ids)
        input_ids.append([pad] * left + e.input_ids + [pad] * right)
        labels.append([IGNORE] * left + e.labels + [IGNORE] * right)
        mask.append([0] * left + [1] * len(e.input_ids) + [0] * right)
    attention_mask = torch.tensor(mask)
    return {
        "input_ids": torch.tensor(input_ids),
        "labels": torch.tensor(labels),
        "attention_mask": attention_mask,
        "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
        "thought_start": align,
        "n_thoughts": torch.tensor([e.n_thoughts for e in examples]),
    }
