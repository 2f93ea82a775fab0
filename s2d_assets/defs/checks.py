"""Asset checks: the plain guards of ``distill/checks.py``, run on every seed's rows and wrapped as
Dagster results. Blocking ones stop a checkpoint from being trained; which stage carries which
check is declared in the stage table (``Stage.checks``)."""

from collections.abc import Callable
from dataclasses import dataclass

from dagster import AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, AssetKey, ResourceParam, asset_check

from s2d_assets.config.experiment import ChecksSpec
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.distill.checks import (
    CheckOutcome,
    answer_collapse,
    answer_distribution,
    eval_leakage,
    over_seeds,
    parse_rate,
    pool_size,
)
from s2d_assets.distill.context import StageContext


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    """A guard's outcome as Dagster's check result (a warning when the guard only warns)."""
    severity = {"severity": AssetCheckSeverity.WARN} if outcome.warn else {}
    return AssetCheckResult(
        passed=outcome.passed, metadata=outcome.metadata, description=outcome.description, **severity
    )


@dataclass(frozen=True, kw_only=True)
class Check:
    """An asset check a stage declares (``Stage.checks``): run on every seed's rows of (task, method)."""

    name: str
    description: str
    run: Callable[[Warehouse, str, str, ChecksSpec], CheckOutcome]
    blocking: bool = False  # a failure stops the downstream assets (training)


POOL_SIZE = Check(
    name="pool_size",
    description="Enough kept inputs to train on.",
    run=lambda warehouse, task, method, spec: pool_size(warehouse, task, method, spec.min_pool_size),
    blocking=True,
)
NO_EVAL_LEAKAGE = Check(
    name="no_eval_leakage",
    description="No eval-split input in training.",
    run=lambda warehouse, task, method, spec: eval_leakage(warehouse, task, method),
    blocking=True,
)
PARSE_RATE = Check(
    name="parse_rate",
    description="Share of samples with a parsed answer.",
    run=lambda warehouse, task, method, spec: parse_rate(warehouse, task, method, spec.min_parse_rate),
)
ANSWER_DISTRIBUTION = Check(
    name="answer_distribution",
    description="The kept answers are not all the same.",
    run=lambda warehouse, task, method, spec: answer_distribution(warehouse, task, method, spec.max_answer_share),
)
ANSWER_COLLAPSE = Check(
    name="answer_collapse",
    description="No system gives the same answer to almost every eval item.",
    run=lambda warehouse, task, method, spec: answer_collapse(warehouse, task, method, spec.max_eval_answer_share),
)


def stage_check(check: Check, key: AssetKey, task: str, method: str, spec: ChecksSpec) -> AssetChecksDefinition:
    @asset_check(asset=key, name=check.name, blocking=check.blocking, description=check.description)
    def _check(s2d: ResourceParam[StageContext]) -> AssetCheckResult:
        return check_result(over_seeds(s2d, lambda warehouse: check.run(warehouse, task, method, spec)))

    return _check
