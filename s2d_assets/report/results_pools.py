"""The results document's pool table: what each distillation pool held, per seed.

From ``results_data`` (each seed's ``curate.pool_summary``): the inputs kept, how many of them on
one parsed vote, the kept answers' balance, and the pool's accuracy against the train split's
references, which is labelled analysis only (the curation stage computes it after the pool is
written and never selects with it). No Dagster here.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from s2d_assets.report.results_data import ExperimentResults

POOL_HEADER = (
    "task",
    "method",
    "kept",
    "kept on one parsed vote",
    "answer balance",
    "pool accuracy vs references (analysis only)",
)
POOL_NOTE = (
    "Distillation pools, per seed (in seed order): the inputs kept, those kept on one parsed vote (the pool "
    "answer only one parsed sample gave), each kept answer's share, and the kept answers scored against the "
    "train split's references. That accuracy is analysis only: computed after the pool is written, never used "
    "to select."
)


def pool_rows(results: ExperimentResults) -> list[list[str]]:
    """One row per (task, method) with a pool; values per seed joined by commas."""
    body = []
    for row in results.rows:
        if not row.pools:
            continue
        pools = [row.pools[seed] for seed in sorted(row.pools)]
        body.append(
            [
                row.task,
                row.method,
                ", ".join(str(p["kept"]) for p in pools),
                ", ".join(str(p["kept_on_one_vote"]) for p in pools),
                "; ".join(balance_text(p["answer_balance"]) for p in pools),
                accuracy_text(pools),
            ]
        )
    return body


def balance_text(balance: dict[str, float]) -> str:
    if not balance:
        return "(empty)"
    return " / ".join(f"`{answer[:20].replace('|', '/')}` {100 * share:.0f}%" for answer, share in balance.items())


def accuracy_text(pools: Sequence[dict[str, Any]]) -> str:
    """Mean ± sd over the seeds with a labelled pool, and each seed's value over its labelled inputs."""
    scored = [p for p in pools if p["pool_accuracy"] is not None]
    if not scored:
        return "n/a (no kept input has a reference)"
    values = [100 * p["pool_accuracy"] for p in scored]
    each = ", ".join(f"{v:.1f}% of {p['pool_labelled']}" for v, p in zip(values, scored, strict=True))
    if len(values) == 1:
        return each
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}% ({each})"
