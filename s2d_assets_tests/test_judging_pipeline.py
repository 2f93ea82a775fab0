"""BSM judging and USC curation through the stages, with a scripted engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import AssetKey

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.distill import StageContext
from s2d_assets.engines.base import GenerationRequest
from s2d_assets.tasks.judging import load_mt_bench_references
from s2d_assets_tests.fakes import ScriptedEngine


def _pipeline(tmp_path: Path, model_dir: Path, data: dict[str, Any], respond) -> StageContext:  # type: ignore[no-untyped-def]
    base = {"name": "judge", "n_samples": 2, "model": {"source": "path", "path": str(model_dir)}}
    experiment = parse_experiment({**base, **data})
    return StageContext(
        experiment, StatePaths(tmp_path / "state"), engine_factory=lambda d, f, a: ScriptedEngine(respond)
    )


def test_mt_bench_pairs_then_bsm_generations(tiny_model_dir: Path, tmp_path: Path) -> None:
    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("We want to evaluate"):
            return "1. Accuracy\n2. Detail"
        if content.startswith("You are given a user question"):
            first = content.split("[The Start of Assistant A's Answer]\n", 1)[1].split("\n", 1)[0]
            return "5\n2" if first.startswith("long") else "2\n5"  # the longer answer wins in both orders
        return ("long answer " * 3) if request.params.temperature == 0.0 else "short"

    data = {
        "tasks": {"judging": {"kind": "pairwise_judging", "source": "mt_bench", "train_size": 2, "eval_size": 1}},
        "methods": {"bsm": {"kind": "bsm"}},
    }
    pipeline = _pipeline(tmp_path, tiny_model_dir, data, respond)
    distill.write_inputs(pipeline, "judging")
    distill.write_perturbed_inputs(pipeline, "judging")
    result = distill.generate_system2(pipeline, "judging", "bsm", pipeline.base_model())
    assert result.metadata["parse_rate"] == 1.0
    rows = pipeline.warehouse.query("SELECT answer, steps FROM generations WHERE system = 'system2'").to_dicts()
    assert {r["answer"] for r in rows} == {"A"}
    names = [s["name"] for s in json.loads(rows[0]["steps"])]
    assert names == ["split", "branch", "solve_ab", "solve_ab", "solve_ba", "solve_ba", "merge"]
    # The raw inputs asset depends on the base model only for this kind of task.
    paths = StatePaths(tmp_path / "state")
    defs = build_definitions(pipeline.experiment, tmp_path / "judge.yaml", paths)
    graph = defs.resolve_asset_graph()
    assert AssetKey(["judge", "base_model"]) in graph.get(AssetKey(["judge", "judging", "raw_inputs"])).parent_keys


def test_usc_curation_keeps_the_selected_free_form_sample(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    questions = {
        "Who wrote Hamlet?": "Shakespeare",
        "Who painted the Mona Lisa?": "Leonardo",
        "Capital of Peru?": "Lima",
    }
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in questions.items()))

    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("I have generated the following responses"):
            return "no idea" if "Peru" in content else "The most consistent response is Response 1"
        return f"answer number {request.sample_idx}"

    data = {
        "tasks": {
            "qa": {"kind": "user", "path": str(path), "answer_type": "free_text", "train_size": 2, "eval_size": 1}
        },
        "methods": {"cot": {"kind": "cot_zero_shot", "curation": {"filter": "usc"}}},
    }
    pipeline = _pipeline(tmp_path, tiny_model_dir, data, respond)
    distill.write_inputs(pipeline, "qa")
    distill.write_perturbed_inputs(pipeline, "qa")
    distill.generate_system2(pipeline, "qa", "cot", pipeline.base_model())
    result = distill.curate(pipeline, "qa", "cot")
    assert result.metadata["inputs"] == 2
    pool = pipeline.warehouse.query(
        "SELECT i.prompt, c.answer, c.kept, c.reason FROM curated_pool c JOIN inputs i USING (task, input_id)"
    ).to_dicts()
    for row in pool:
        if "Peru" in row["prompt"]:
            assert (row["kept"], row["reason"], row["answer"]) == (False, "usc_no_selection", None)
        else:
            assert (row["kept"], row["reason"], row["answer"]) == (True, "kept", "answer number 1")


def test_evaluation_reports_position_inconsistency_and_label_agreement(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {
            "question": f"Question {i}?",
            "answer_a": "right" if i % 2 else "wrong",
            "answer_b": "wrong" if i % 2 else "right",
        }
        for i in range(4)
    ]
    labelled = [{**r, "label": "A" if r["answer_a"] == "right" else "B"} for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled))

    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("We want to evaluate"):
            return "1. Correctness"
        if content.startswith("You are given a user question"):
            first = content.split("[The Start of Assistant A's Answer]\n", 1)[1].split("\n", 1)[0]
            return "5\n1" if first == "right" else "1\n5"
        return "A"  # System 1 always names the first answer: a pure position bias

    data = {
        "tasks": {
            "judging": {
                "kind": "pairwise_judging",
                "source": "file",
                "path": str(path),
                "train_size": 2,
                "eval_size": 2,
            }
        },
        "methods": {"bsm": {"kind": "bsm"}},
        "training": {"epochs": 1, "batch_size": 2, "max_length": 2048, "lora_r": 2, "lora_alpha": 4},
    }
    pipeline = _pipeline(tmp_path, tiny_model_dir, data, respond)
    base = pipeline.base_model()
    distill.write_inputs(pipeline, "judging")
    distill.write_perturbed_inputs(pipeline, "judging")
    distill.generate_system2(pipeline, "judging", "bsm", base)
    distill.curate(pipeline, "judging", "bsm")
    distill.build_distillation_set(pipeline, "judging", "bsm")
    trained = distill.train_checkpoint(pipeline, "judging", "bsm", base, {})
    distill.generate_system1_baseline(pipeline, "judging", base)
    result = distill.evaluate(pipeline, "judging", "bsm", base, Path(trained.metadata["path"]))
    assert result.metadata["system1_position_inconsistency"] == 1.0
    assert result.metadata["system2_position_inconsistency"] == 0.0
    assert result.metadata["system2_label_agreement"] == 1.0
    assert result.metadata["system2_accuracy"] == 1.0


@pytest.mark.timeout(240)
def test_labelled_pairs_judging_accuracy_is_agreement_with_the_labels(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A judge that prefers the packaged reference answer agrees with every label; a position-biased BSM
    judgment is discarded from the pool and counted, never turned into a tie."""
    references = {r["question"]: r["reference"] for r in load_mt_bench_references()}

    def better(content: str) -> tuple[str, str]:
        question = content.split("[User Question]\n", 1)[1].split("\n\n[The Start of Assistant A's Answer]", 1)[0]
        first = content.split("[The Start of Assistant A's Answer]\n", 1)[1].split("\n[The End of Assistant A", 1)[0]
        return ("A", "B") if first == references[question] else ("B", "A")

    def respond(request: GenerationRequest) -> str:
        content = request.messages[-1][1]
        if content.startswith("We want to evaluate"):
            return "1. Correctness"
        if content.startswith("You are given a user question"):
            if "[User Question]\nThe vertices of a triangle" in content:  # question 111: a position-biased judge
                return "5\n1"
            return "5\n1" if better(content)[0] == "A" else "1\n5"
        if content.startswith("Please act as an impartial judge"):  # System 1: the judge instruction, verdict only
            return better(content)[0]
        raise AssertionError(f"unexpected prompt: {content[:60]}")

    data = {
        "tasks": {"judging": {"kind": "pairwise_judging", "train_size": 24, "eval_size": 16}},
        "methods": {"bsm": {"kind": "bsm"}},
        "training": {"epochs": 1, "batch_size": 8, "max_length": 2048, "lora_r": 2, "lora_alpha": 4},
    }
    pipeline = _pipeline(tmp_path, tiny_model_dir, data, respond)
    base = pipeline.base_model()
    distill.write_inputs(pipeline, "judging")
    distill.write_perturbed_inputs(pipeline, "judging")
    distill.generate_system2(pipeline, "judging", "bsm", base)
    pool = distill.curate(pipeline, "judging", "bsm")
    inconsistent = pipeline.warehouse.query(
        "SELECT count(*) AS n FROM inputs WHERE split = 'train' AND json_extract(meta, '$.question_id') = 111"
    )["n"][0]
    assert pool.metadata["position_inconsistent_inputs"] == inconsistent
    assert pool.metadata["kept"] == 24 - inconsistent
    assert pool.metadata["threshold"] == "plurality vote" and pool.metadata["unparsed"] == "ignore"
    assert "tie" not in set(pipeline.warehouse.query("SELECT answer FROM curated_pool WHERE kept")["answer"])
    distill.build_distillation_set(pipeline, "judging", "bsm")
    prompts = pipeline.warehouse.query("SELECT prompt FROM distillation_set")["prompt"]
    assert all(p.startswith("Please act as an impartial judge") for p in prompts)  # System 1's judge prompt
    # Training on these long pairs is the slow tests' business: here the set is emptied, so nothing is distilled.
    pipeline.warehouse.replace_rows("distillation_set", {"task": "judging", "method": "bsm"}, pl.DataFrame())
    trained = distill.train_checkpoint(pipeline, "judging", "bsm", base, {})
    distill.generate_system1_baseline(pipeline, "judging", base)
    result = distill.evaluate(pipeline, "judging", "bsm", base, Path(trained.metadata["path"]))

    rows = {r["system"]: r for r in pipeline.warehouse.query("SELECT * FROM evaluations").to_dicts()}
    assert (rows["distilled"]["status"], rows["distilled"]["accuracy"]) == ("untrained", None)
    labels = pipeline.warehouse.query("SELECT reference FROM inputs WHERE split = 'eval'")["reference"].to_list()
    assert set(labels) == {"A", "B"}
    eval_inconsistent = pipeline.warehouse.query(
        "SELECT count(*) AS n FROM inputs WHERE split = 'eval' AND json_extract(meta, '$.question_id') = 111"
    )["n"][0]
    assert rows["system1"]["accuracy"] == 1.0  # computed against the labels: every verdict names the reference
    assert rows["system2"]["accuracy"] == pytest.approx((16 - eval_inconsistent) / 16)
    assert rows["system2"]["discarded"] == eval_inconsistent
    assert rows["system1"]["mean_tokens"] > 0 and rows["system2"]["mean_tokens"] > rows["system1"]["mean_tokens"]
    assert rows["system1"]["majority_rate"] == pytest.approx(max(labels.count("A"), labels.count("B")) / 16)
    assert result.metadata["system1_label_agreement"] == 1.0
    assert result.metadata["system2_position_inconsistent_discards"] == eval_inconsistent
    assert result.metadata["system1_position_inconsistent_discards"] == 0
    groups = pipeline.warehouse.query("SELECT DISTINCT group_name FROM evaluation_groups")["group_name"].to_list()
    assert "other_question_reference" in groups
