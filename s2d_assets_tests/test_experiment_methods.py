"""The experiment file's method and curation options: kinds, exemplars, filters and ablations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config.experiment import ExperimentError, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill import StageContext, plan
from s2d_assets.methods import METHODS

TASK = {"kind": "sycophancy", "train_size": 2, "eval_size": 1}


def _experiment(methods: dict[str, Any], task: dict[str, Any] = TASK, **extra: Any):  # type: ignore[no-untyped-def]
    return parse_experiment({"name": "x", "tasks": {"t": task}, "methods": methods, **extra}, "x.yaml")


def test_every_registered_method_kind_is_selectable() -> None:
    kinds = set(METHODS) - {"cot_few_shot"}
    experiment = _experiment({kind: {"kind": kind} for kind in kinds})
    assert set(experiment.methods) == kinds


def test_few_shot_needs_and_reads_its_exemplar_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"methods\.few\.exemplars: cot_few_shot needs an exemplar file"):
        _experiment({"few": {"kind": "cot_few_shot"}})
    path = tmp_path / "ex.jsonl"
    path.write_text('{"question": "1+1?", "reasoning": "1+1=2.", "answer": "2"}\n')
    experiment = _experiment({"few": {"kind": "cot_few_shot", "exemplars": str(path)}})
    method = StageContext(experiment, StatePaths(tmp_path / "s")).method("few")
    assert method.steps[0].render("Q?", {}) == "Q: 1+1?\nA: 1+1=2. The answer is 2.\n\nQ: Q?\nA:"


def test_overrides_may_only_name_prompt_steps() -> None:
    with pytest.raises(ExperimentError, match=r"methods.judge.prompts: unknown step\(s\) \['merge'\]"):
        _experiment({"judge": {"kind": "bsm", "prompts": {"merge": "x"}}})
    experiment = _experiment({"s2a": {"kind": "s2a", "max_new_tokens": {"regenerate": 32}}})
    assert experiment.methods["s2a"].max_new_tokens == {"regenerate": 32}


def test_perturbation_filters_need_a_task_with_perturbations() -> None:
    with pytest.raises(ExperimentError, match=r"tasks\.t declares no perturbations"):
        _experiment({"s2a": {"kind": "s2a", "curation": {"filter": "perturbation"}}})
    experiment = _experiment(
        {"s2a": {"kind": "s2a", "curation": {"filter": "combined"}}}, {**TASK, "perturbations": ["option_swap"]}
    )
    assert experiment.curation_for("s2a").filter == "combined"


def test_the_papers_ablations_are_expressible(tmp_path: Path) -> None:
    # System 1's own self-consistent answers: the direct prompt sampled N times, majority-voted.
    experiment = _experiment({"s1_sc": {"kind": "system1"}, "s2a_raw": {"kind": "s2a", "curation": {"filter": "none"}}})
    pipeline = StageContext(experiment, StatePaths(tmp_path / "s"))
    assert pipeline.method("s1_sc").steps[0].template.endswith("Answer with only the final answer, and nothing else.")
    assert plan.pool_version(experiment, "s2a_raw") != plan.pool_version(experiment, "s1_sc")
