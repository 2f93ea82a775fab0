"""Stage 4, curation: keep only the answers the model agrees with itself on. Selection never reads a label.

All filters are set-based: one DuckDB query over the answer counts the warehouse keeps with the
stage's generations (``answer_counts``), so curation costs about what a bare majority vote does
even at hundreds of thousands of inputs, and a filter change counts nothing again:

- ``self_consistency`` (Wang et al., 2022; the distillation paper's default): plurality vote over
  variant 0's parsed answers; the winner is kept when it is unique (the published rule,
  ``min_agreement: 0``). ``min_agreement`` > 0 is an extra threshold on the winner's vote share,
  an option that results name as such. ``unparsed`` says what N is: ``ignore`` (the default, as
  self-consistency votes over answers) = the samples that gave an answer, ``count`` = every sample
  (an unparsed sample then counts toward N and votes for nothing).
- ``perturbation`` / ``combined``: every variant's answers mapped back to the original through
  its answer map; each variant votes with its unique majority; kept when all variants agree
  (``combined`` also requires variant 0's self-consistency).
- ``none``: sample 0's parsed answer, unfiltered (the ablation).
- ``usc``: universal self-consistency (Chen et al., 2023): the base model picks the most
  consistent of an input's samples (one greedy LLM call per input).

A sample whose answer is ``position_inconsistent`` (BSM's verdicts in the two orders disagree) is
an outcome like any answer in the vote, but it is never kept: an input whose winner it is is
discarded with reason ``position_inconsistent`` (with one sample, exactly the paper's rule).

What the pool holds (``pool_summary``, also in ``s2d report``): how many inputs were kept on one
parsed vote (a pool answer only one parsed sample gave), the share of each kept answer (its
balance), and the pool's accuracy against the train split's references. That accuracy is labelled
analysis only: computed after the pool is written, from the rows it holds, and never used to select.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from s2d_assets.config.curation import CURATION_FILTERS
from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.votes import (
    KEPT,
    NO_ANSWER,
    POOL_COLUMNS,
    USC_NO_SELECTION,
    CurationFilter,
    sample_counts,
)
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.tasks import TRAIN
from s2d_assets.tasks.judging import POSITION_INCONSISTENT

# -- universal self-consistency -----------------------------------------------------------------
USC_TEMPLATE = (
    "I have generated the following responses to the question: {question}\n\n{responses}\n\n"
    "Evaluate these responses.\nSelect the most consistent response based on majority consensus.\n"
    'Start your answer with "The most consistent response is Response X" (without quotes).'
)
_CHOSEN = re.compile(r"most consistent response is\W*Response\s*(\d+)", re.IGNORECASE)
_ANY = re.compile(r"\bResponse\s*(\d+)", re.IGNORECASE)
USC_MAX_NEW_TOKENS = 24


def usc_prompt(question: str, responses: Sequence[str]) -> str:
    listed = "\n".join(f"Response {index}: {text.strip()}" for index, text in enumerate(responses))
    return USC_TEMPLATE.format(question=question, responses=listed)


def parse_selection(text: str, n_responses: int) -> int | None:
    """The selected response index: 'The most consistent response is Response X', else a single 'Response X'."""
    chosen = _CHOSEN.search(text)
    if chosen is None:
        mentioned = set(_ANY.findall(text))
        if len(mentioned) != 1:
            return None
        index = int(mentioned.pop())
    else:
        index = int(chosen.group(1))
    return index if 0 <= index < n_responses else None


def select_most_consistent(engine: Any, items: Sequence[tuple[str, Sequence[str]]], seed: int) -> list[int | None]:
    """One greedy USC call per (question, responses) item, all in one engine call; the parsed selections."""
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=USC_MAX_NEW_TOKENS)
    prompts = [usc_prompt(question, responses) for question, responses in items]
    requests = [GenerationRequest.user(p, params, seed=derive_seed(seed, "usc", p)) for p in prompts]
    completions = engine.generate(requests) if requests else []
    return [parse_selection(c.text, len(r)) for c, (_, r) in zip(completions, items, strict=True)]


@dataclass(frozen=True)
class Decision:
    answer: str | None
    votes: dict[str, int]
    n_samples: int
    agreement: float
    kept: bool
    reason: str


def usc_decision(selection: int | None, answers: Sequence[str | None]) -> Decision:
    """Keep the sample the model selected as most consistent (its parsed answer)."""
    n_samples = len(answers)
    votes = dict(Counter(a for a in answers if a is not None))
    if selection is None:
        return Decision(None, votes, n_samples, 0.0, False, USC_NO_SELECTION)
    answer = answers[selection]
    if answer is None:
        return Decision(None, votes, n_samples, 0.0, False, NO_ANSWER)
    return Decision(answer, votes, n_samples, votes[answer] / n_samples, True, KEPT)


class UniversalSelfConsistency(CurationFilter):
    """The base model picks each input's most consistent sample; its parsed answer is kept."""

    version = USC_TEMPLATE  # the prompt it sends shapes its decisions

    def decide(self, ctx: Any, task_name: str, method_name: str, spec: Any) -> pl.DataFrame:
        return _usc_decisions(ctx, task_name, method_name)


USC = UniversalSelfConsistency()


def _usc_decisions(ctx: StageContext, task_name: str, method_name: str) -> pl.DataFrame:
    """The base model picks each input's most consistent sample; its parsed answer is kept."""
    samples = ctx.warehouse.query(
        "SELECT g.input_id, i.prompt, g.output, g.answer FROM generations g "
        "JOIN inputs i USING (experiment, task, input_id) WHERE g.experiment = ? AND g.task = ? AND g.method = ? "
        "AND g.system = 'system2' AND g.split = ? AND g.variant_id = 0 "
        "ORDER BY g.input_id, g.sample_idx",
        [ctx.experiment.name, task_name, method_name, TRAIN],
    )
    grouped = samples.group_by("input_id", maintain_order=True).agg("prompt", "output", "answer")
    items = [(p[0], [o or "" for o in outs]) for p, outs in zip(grouped["prompt"], grouped["output"], strict=True)]
    selections = select_most_consistent(ctx.base_engine(f"{task_name}/{method_name}/usc"), items, ctx.experiment.seed)
    decisions = [usc_decision(s, a) for s, a in zip(selections, grouped["answer"].to_list(), strict=True)]
    return pl.DataFrame(
        {
            "input_id": grouped["input_id"],
            "answer": [d.answer for d in decisions],
            "votes": [json.dumps(d.votes, sort_keys=True) for d in decisions],
            "n_samples": [d.n_samples for d in decisions],
            "agreement": [d.agreement for d in decisions],
            "kept": [d.kept for d in decisions],
            "reason": [d.reason for d in decisions],
        },
        schema_overrides={"answer": pl.String, "n_samples": pl.Int32, "agreement": pl.Float64},
    )


# -- the stage ----------------------------------------------------------------------------------
def curate(ctx: StageContext, task_name: str, method_name: str) -> StageResult:
    spec = ctx.experiment.curation_for(method_name)
    params = [ctx.experiment.name, task_name, method_name, TRAIN]
    with ctx.warehouse.connect() as con:
        counts = sample_counts(con, params)
    decisions = CURATION_FILTERS.implementation(spec.filter).decide(ctx, task_name, method_name, spec)
    frame = decisions.with_columns(pl.lit(task_name).alias("task"), pl.lit(method_name).alias("method")).select(
        "task", "method", *POOL_COLUMNS
    )
    ctx.warehouse.replace_rows("curated_pool", {"task": task_name, "method": method_name}, frame)
    kept = int(frame["kept"].sum()) if frame.height else 0
    reasons = frame.group_by("reason").len().sort("reason") if frame.height else pl.DataFrame()
    # Labelled analysis of the written pool: the references are read only now, never by the selection above.
    references = ctx.warehouse.query(
        "SELECT input_id, reference FROM inputs WHERE experiment = ? AND task = ? AND split = ?",
        [ctx.experiment.name, task_name, TRAIN],
    )
    summary = pool_summary(ctx.task(task_name), frame.to_dicts(), dict(references.rows()))
    return StageResult(
        data_version=rows_hash(frame.select("input_id", "answer", "kept").sort("input_id").rows()),
        metadata={
            "inputs": frame.height,
            "kept": kept,
            "keep_rate": round(kept / max(frame.height, 1), 4),
            "mean_agreement": round(float(frame["agreement"].mean() or 0.0), 4) if frame.height else 0.0,
            **curation_metadata(spec, counts, frame),
            **pool_metadata(summary),
        },
        markdown={"reasons": markdown_table(reasons) if frame.height else "(empty)"},
    )


BALANCE_ANSWERS = 5  # answers listed in ``answer_balance``; the rest summed as ``(other)``
POOL_ACCURACY_NOTE = (
    "pool_accuracy: the kept answers scored against the train split's references (pool_labelled of them have "
    "one). Labelled analysis only: computed after the pool is written, never used to select."
)


def pool_summary(task: Any, pool: Sequence[dict[str, Any]], references: dict[str, str | None]) -> dict[str, Any]:
    """What a written pool holds: ``kept``; ``kept_on_one_vote``, kept inputs whose answer only one parsed
    sample gave; ``answer_balance``, each kept answer's share (the top ``BALANCE_ANSWERS``, the rest as
    ``(other)``); ``pool_accuracy`` over the kept inputs with a reference (None without any) and
    ``pool_labelled``, how many had one. ``pool`` rows carry ``input_id, answer, votes, kept``."""
    kept = [row for row in pool if row["kept"]]
    single = sum(json.loads(row["votes"] or "{}").get(row["answer"]) == 1 for row in kept)
    ranked = Counter(str(row["answer"]) for row in kept).most_common()
    balance = {answer: round(c / len(kept), 4) for answer, c in ranked[:BALANCE_ANSWERS]}
    if len(ranked) > BALANCE_ANSWERS:
        balance["(other)"] = round(sum(c for _, c in ranked[BALANCE_ANSWERS:]) / len(kept), 4)
    labelled = [(row["answer"], references[row["input_id"]]) for row in kept if references.get(row["input_id"])]
    correct = sum(bool(task.is_correct(answer, reference)) for answer, reference in labelled)
    return {
        "kept": len(kept),
        "kept_on_one_vote": single,
        "answer_balance": balance,
        "pool_accuracy": correct / len(labelled) if labelled else None,
        "pool_labelled": len(labelled),
    }


def pool_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    """``pool_summary`` as materialisation metadata, with the note that the accuracy is analysis only."""
    accuracy = summary["pool_accuracy"]
    return {
        "kept_on_one_vote": summary["kept_on_one_vote"],
        "answer_balance": json.dumps(summary["answer_balance"]),
        "pool_accuracy": "n/a" if accuracy is None else round(accuracy, 4),
        "pool_labelled": summary["pool_labelled"],
        "pool_accuracy_note": POOL_ACCURACY_NOTE,
    }


def curation_metadata(spec: Any, counts: dict[str, int], pool: pl.DataFrame) -> dict[str, Any]:
    """What the pool was filtered by, named as such: the filter, its threshold (``min_agreement``; 0 = the
    published plurality vote), how unparsed samples count, and how many samples and inputs were dropped why."""
    return {
        "filter": spec.filter,
        "min_agreement": spec.min_agreement,
        "threshold": "plurality vote" if spec.min_agreement == 0 else f"plurality with >= {spec.min_agreement:g}",
        "unparsed": spec.unparsed,
        **counts,
        "position_inconsistent_inputs": int((pool["reason"] == POSITION_INCONSISTENT).sum()) if pool.height else 0,
    }
