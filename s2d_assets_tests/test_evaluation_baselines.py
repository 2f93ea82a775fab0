"""Degenerate results are visible: majority-class rate, answer distributions, the collapse check, untrained rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.checks import check_result
from s2d_assets.distill import StageContext
from s2d_assets.distill.checks import answer_collapse
from s2d_assets.distill.evaluate import answer_baselines, item_groups, majority_class
from s2d_assets.engines.base import GenerationRequest
from s2d_assets.tasks import build_task
from s2d_assets_tests.fakes import ScriptedEngine


def _run(tmp_path: Path, model_dir: Path, respond) -> StageContext:  # type: ignore[no-untyped-def]
    experiment = parse_experiment(
        {
            "name": "collapse",
            "n_samples": 2,
            "model": {"source": "path", "path": str(model_dir)},
            "tasks": {"coin": {"kind": "coin_flip", "train_size": 4, "eval_size": 12, "name_pool": 50}},
            "methods": {"rar": {"kind": "rar_1step"}},
        }
    )
    ctx = StageContext(
        experiment, StatePaths(tmp_path / "state"), engine_factory=lambda d, f, a: ScriptedEngine(respond)
    )
    base = ctx.base_model()
    distill.write_inputs(ctx, "coin")
    distill.write_perturbed_inputs(ctx, "coin")
    distill.generate_system2(ctx, "coin", "rar", base)
    distill.curate(ctx, "coin", "rar")
    distill.build_distillation_set(ctx, "coin", "rar")
    distill.train_checkpoint(ctx, "coin", "rar", base, {})
    distill.generate_system1_baseline(ctx, "coin", base)
    return ctx


@pytest.mark.timeout(120)
def test_a_constant_answer_model_fires_the_collapse_check_and_an_empty_pool_is_untrained(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    def respond(request: GenerationRequest) -> str:
        # System 2 never gives a parsable answer (the pool stays empty); System 1 always says "yes".
        return "hmm, hard to say" if "Rephrase and expand" in request.messages[0][1] else "yes"

    ctx = _run(tmp_path, tiny_model_dir, respond)
    # How System 1's answers ended, as an engine records it: the first three cut off at the budget.
    with ctx.warehouse.transaction() as con:
        con.execute(
            "UPDATE generations SET finish_reason = CASE WHEN input_id IN (SELECT input_id FROM generations "
            "WHERE system = 'system1' ORDER BY input_id LIMIT 3) THEN 'length' ELSE 'stop' END WHERE system = 'system1'"
        )
    checkpoint = (ctx.paths.checkpoint("collapse", "coin", "rar") / "current").resolve()
    result = distill.evaluate(ctx, "coin", "rar", ctx.base_model(), checkpoint)

    references = [i["reference"] for i in ctx.inputs("coin", "eval")]
    yes_rate = references.count("yes") / len(references)
    rows = {r["system"]: r for r in ctx.warehouse.query("SELECT * FROM evaluations").to_dicts()}
    system1 = rows["system1"]
    assert system1["accuracy"] == pytest.approx(yes_rate)  # a constant answer scores the share of "yes"
    assert (system1["top_answer"], system1["top_answer_share"]) == ("yes", 1.0)
    assert json.loads(system1["answer_distribution"]) == {"yes": 1.0}
    assert system1["majority_rate"] == pytest.approx(max(yes_rate, 1 - yes_rate))
    assert rows["system2"]["parse_rate"] == 0.0 and rows["system2"]["top_answer"] is None
    # What was read: System 1 parsed all 12 (accuracy over them = accuracy), 3 of 12 cut off, all parsed.
    read = ("n_parsed", "accuracy_parsed", "n_truncated", "n_unparsed_truncated", "n_finish_unknown", "truncation_rate")
    assert tuple(system1[k] for k in read) == (12, pytest.approx(yes_rate), 3, 0, 0, 0.25)
    # System 2 parsed nothing (no accuracy over parsed answers) and its engine recorded no ends: unknown, not 0.
    assert tuple(rows["system2"][k] for k in read) == (0, None, None, None, 12, None)
    assert result.metadata["system1_truncation_rate"] == 0.25 and result.metadata["system1_n_parsed"] == 12
    assert result.metadata["system2_truncation_rate"] == "n/a" and result.metadata["system2_accuracy_parsed"] == "n/a"
    assert result.metadata["system2_parse_rate"] == 0.0 and result.metadata["system2_truncated"] == "n/a"
    evaluation = result.markdown["evaluation"]
    assert "| truncated |" in evaluation and "| 25.0% |" in evaluation and "| n/a |" in evaluation
    # The empty pool trained nothing: the distilled row says so and carries no score.
    distilled = rows["distilled"]
    assert (distilled["status"], distilled["accuracy"], distilled["train_examples"]) == ("untrained", None, 0)
    assert "distilled_accuracy" not in result.metadata
    assert result.metadata["distilled_status"].startswith("untrained")
    assert result.metadata["system1_top_answer_share"] == 1.0
    assert "majority_class_%" in result.markdown["evaluation"]
    assert ctx.warehouse.count("generations", {"system": "distilled"}) == 0

    check = check_result(answer_collapse(ctx.warehouse, "coin", "rar", 0.9))  # as Dagster records it
    assert not check.passed and check.severity.value == "WARN"
    assert "system1 answers 'yes' to 100% of 12 items" in (check.description or "")
    assert check.metadata["system1_top_answer_share"].value == 1.0


@pytest.mark.timeout(60)
def test_baselines_of_a_split_and_of_answers() -> None:
    experiment = {
        "name": "x",
        "tasks": {"c": {"kind": "coin_flip", "train_size": 1, "eval_size": 1}},
        "methods": {"r": {"kind": "rar_1step"}},
    }
    task = build_task(parse_experiment(experiment).tasks["c"])
    assert majority_class(task, ["yes", "no", "yes", "yes"]) == ("yes", 0.75)
    assert majority_class(task, ["", ""]) == (None, None)
    baselines = answer_baselines(["yes", None, "no", "yes", "position_inconsistent"])
    assert (baselines["top_answer"], baselines["top_answer_share"]) == ("yes", 0.4)
    assert baselines["parse_rate"] == 0.8 and baselines["discarded"] == 1
    assert json.loads(baselines["answer_distribution"])["(unparsed)"] == 0.2
    assert item_groups({"bias": "none"}) == ["none", "unbiased"]
    assert item_groups({"bias": "refute_correct", "eval_groups": ["math"]}) == ["math", "refute_correct", "biased"]
