"""The guards on a (task, method)'s pool and evaluation, as plain SQL over the warehouse: enough kept
inputs, no eval question in training, the parse rate of the System 2 samples, the kept answers'
balance, and a system giving one answer to almost every eval item. Each returns a ``CheckOutcome``;
``defs/checks.py`` turns it into a Dagster asset check (blocking ones stop a checkpoint from being
trained). No Dagster here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from s2d_assets.core.warehouse import Warehouse
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.replicates import replicate_contexts
from s2d_assets.tasks import EVAL
from s2d_assets.tasks.base import normalize_prompt


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    warn: bool = False  # a warning, not an error


def pool_size(warehouse: Warehouse, task: str, method: str, minimum: int) -> CheckOutcome:
    examples = warehouse.count("distillation_set", {"task": task, "method": method})
    return CheckOutcome(
        passed=examples >= minimum,
        metadata={"examples": examples, "min_pool_size": minimum},
        description=f"{examples} kept inputs; training needs at least {minimum}",
    )


def eval_leakage(warehouse: Warehouse, task: str, method: str) -> CheckOutcome:
    """No training example asks an eval question: prompts are compared normalised, whatever the ids say.

    A training example whose input is not in ``inputs`` cannot be checked, and fails the check too.
    """
    training = warehouse.query(
        "SELECT d.input_id, i.prompt FROM distillation_set d LEFT JOIN inputs i USING (experiment, task, input_id) "
        "WHERE d.experiment = ? AND d.task = ? AND d.method = ? ORDER BY d.input_id",
        [warehouse.experiment, task, method],
    ).rows()
    evaluation = warehouse.query(
        "SELECT input_id, prompt FROM inputs WHERE experiment = ? AND task = ? AND split = ? ORDER BY input_id",
        [warehouse.experiment, task, EVAL],
    ).rows()
    eval_ids = {normalize_prompt(prompt): input_id for input_id, prompt in evaluation}
    leaked = [
        f"{input_id} (not in inputs)" if prompt is None else f"{input_id} (= eval {eval_ids[normalize_prompt(prompt)]})"
        for input_id, prompt in training
        if prompt is None or normalize_prompt(prompt) in eval_ids
    ]
    return CheckOutcome(
        passed=not leaked,
        metadata={"leaked_inputs": len(leaked), "examples": ", ".join(leaked[:10])},
        description="no eval question in the training set" if not leaked else f"{len(leaked)} eval questions leaked",
    )


def parse_rate(warehouse: Warehouse, task: str, method: str, minimum: float) -> CheckOutcome:
    row = warehouse.query(
        "SELECT count(*) AS n, count(answer) AS parsed FROM generations "
        "WHERE experiment = ? AND task = ? AND method = ? AND system = 'system2' AND split = 'train'",
        [warehouse.experiment, task, method],
    ).row(0, named=True)
    rate = row["parsed"] / row["n"] if row["n"] else 0.0
    return CheckOutcome(
        passed=rate >= minimum,
        metadata={"parse_rate": round(rate, 4), "min_parse_rate": minimum, "samples": row["n"]},
    )


def answer_distribution(warehouse: Warehouse, task: str, method: str, max_share: float) -> CheckOutcome:
    counts = warehouse.query(
        "SELECT answer, count(*) AS n FROM curated_pool WHERE experiment = ? AND task = ? AND method = ? AND kept "
        "GROUP BY answer ORDER BY n DESC, answer",
        [warehouse.experiment, task, method],
    )
    total = int(counts["n"].sum()) if counts.height else 0
    share = counts["n"][0] / total if total else 0.0
    # A handful of examples says nothing about degeneracy.
    passed = total < 5 or share <= max_share
    return CheckOutcome(
        passed=passed,
        warn=True,
        metadata={"distinct_answers": counts.height, "top_answer_share": round(share, 4), "kept": total},
        description=None if passed else f"one answer holds {share:.0%} of the pool",
    )


def answer_collapse(warehouse: Warehouse, task: str, method: str, max_share: float) -> CheckOutcome:
    """Warn when a system gives one answer to more than ``max_share`` of the eval items (a constant-answer
    model scores the majority-class rate, which is not a skill); the rates are in the metadata."""
    rows = warehouse.query(
        "SELECT system, n, accuracy, majority_rate, top_answer, top_answer_share FROM evaluations "
        "WHERE experiment = ? AND task = ? AND method = ? AND top_answer_share IS NOT NULL ORDER BY system",
        [warehouse.experiment, task, method],
    ).to_dicts()
    # A handful of items says nothing about collapse.
    collapsed = [r for r in rows if r["n"] >= 5 and r["top_answer_share"] > max_share]
    metadata: dict[str, object] = {"max_answer_share": max_share}
    for row in rows:
        metadata[f"{row['system']}_top_answer"] = row["top_answer"] or ""
        metadata[f"{row['system']}_top_answer_share"] = round(row["top_answer_share"], 4)
    if rows and rows[0]["majority_rate"] is not None:
        metadata["majority_rate"] = round(rows[0]["majority_rate"], 4)
    return CheckOutcome(
        passed=not collapsed,
        warn=True,
        metadata=metadata,
        description=(
            "; ".join(
                f"{r['system']} answers {r['top_answer']!r} to {r['top_answer_share']:.0%} of {r['n']} items"
                + (f" (majority class {r['majority_rate']:.0%})" if r["majority_rate"] is not None else "")
                for r in collapsed
            )
            or None
        ),
    )


def over_seeds(ctx: StageContext, check: Callable[[Warehouse], CheckOutcome]) -> CheckOutcome:
    """A check on every seed's rows (``distill/replicates.py``): it passes when it passes for each seed."""
    replicates = replicate_contexts(ctx)
    if len(replicates) == 1:
        return check(ctx.warehouse)
    results = {r.experiment.seed: check(r.warehouse) for r in replicates}
    failed = [seed for seed, result in results.items() if not result.passed]
    first = next(iter(results.values()))
    return CheckOutcome(
        passed=not failed,
        warn=first.warn,
        metadata={
            f"seed{seed}/{key}": value for seed, result in results.items() for key, value in result.metadata.items()
        },
        description=(
            "; ".join(f"seed {seed}: {results[seed].description}" for seed in failed if results[seed].description)
            or (f"failed for seed(s) {failed}" if failed else f"passed for every seed {list(results)}")
        ),
    )
