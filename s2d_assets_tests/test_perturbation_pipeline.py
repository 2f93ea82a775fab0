"""Perturbed variants through the stages: written with answer maps, generated, curated."""

from __future__ import annotations

import json
from pathlib import Path

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill import StageContext
from s2d_assets.distill.votes import PERTURBATION_DISAGREEMENT
from s2d_assets.engines.base import GenerationRequest
from s2d_assets_tests.fakes import ScriptedEngine

EXPERIMENT = {
    "name": "syco",
    "n_samples": 2,
    "model": {"source": "path", "path": "unused"},
    "tasks": {
        "sycophancy": {
            "kind": "sycophancy",
            "source": "hard_100",
            "train_size": 3,
            "eval_size": 1,
            "perturbations": ["option_swap"],
        }
    },
    "methods": {"s2a": {"kind": "s2a"}},
    "curation": {"filter": "perturbation"},
}


def _pipeline(tmp_path: Path, respond) -> StageContext:  # type: ignore[no-untyped-def]
    experiment = parse_experiment(EXPERIMENT)
    return StageContext(
        experiment, StatePaths(tmp_path / "state"), engine_factory=lambda d, f, a: ScriptedEngine(respond)
    )


def _regenerate_then(answer):  # type: ignore[no-untyped-def]
    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("Given the following text by a user"):
            question = content.split("Text by User: ", 1)[1]
            return (
                "Unbiased text context (includes all content except user's bias): -\n"
                f"Question/Query (does not include user bias/preference): {question}"
            )
        return answer(content)

    return respond


def _run(pipeline: StageContext) -> list[dict]:  # type: ignore[type-arg]
    distill.write_inputs(pipeline, "sycophancy")
    written = distill.write_perturbed_inputs(pipeline, "sycophancy")
    assert written.metadata == {"rows": 6, "variants_per_input": 2.0}
    base = BaseModel("fake", Path("unused"), "fp")
    distill.generate_system2(pipeline, "sycophancy", "s2a", base)
    distill.curate(pipeline, "sycophancy", "s2a")
    return pipeline.warehouse.query("SELECT * FROM curated_pool ORDER BY input_id").to_dicts()


def test_variants_carry_the_swap_map(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, _regenerate_then(lambda c: "(A)"))
    distill.write_inputs(pipeline, "sycophancy")
    distill.write_perturbed_inputs(pipeline, "sycophancy")
    rows = pipeline.warehouse.query("SELECT * FROM perturbed_inputs ORDER BY input_id, variant_id").to_dicts()
    assert [r["variant_id"] for r in rows] == [0, 1] * 3
    assert json.loads(rows[0]["answer_map"]) == {} and json.loads(rows[1]["answer_map"]) == {"(A)": "(B)", "(B)": "(A)"}
    assert rows[0]["prompt"].endswith("(A) Agree\n (B) Disagree\n\nAnswer:")
    assert rows[1]["prompt"].endswith("(A) Disagree\n (B) Agree\n\nAnswer:")


def test_a_position_biased_model_is_dropped_for_perturbation_disagreement(tmp_path: Path) -> None:
    pool = _run(_pipeline(tmp_path, _regenerate_then(lambda content: "(A)")))
    assert len(pool) == 3
    assert {(r["kept"], r["reason"]) for r in pool} == {(False, PERTURBATION_DISAGREEMENT)}


def test_a_model_that_follows_the_option_text_is_kept(tmp_path: Path) -> None:
    # Always answers "Agree", wherever it is listed: consistent across the swap.
    def agree(content: str) -> str:
        return "(A) Agree" if "(A) Agree" in content else "(B) Agree"

    pipeline = _pipeline(tmp_path, _regenerate_then(agree))
    pool = _run(pipeline)
    assert {(r["kept"], r["answer"], r["reason"]) for r in pool} == {(True, "(A)", "kept")}
    steps = pipeline.warehouse.query("SELECT steps FROM generations WHERE variant_id = 1 LIMIT 1").item()
    regenerate, answer = json.loads(steps)
    assert regenerate["name"] == "regenerate" and answer["name"] == "answer"
    assert answer["prompt"].endswith("(A) Disagree\n (B) Agree\n\nAnswer:")  # step 2 saw step 1's query
