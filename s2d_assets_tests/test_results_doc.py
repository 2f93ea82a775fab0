"""`s2d report`: the results document from a warehouse with three seeds (no model needed)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import polars as pl
import pytest

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.report import results_doc
from s2d_assets.tasks import build_task
from s2d_assets_tests.conftest import write_experiment

EXPERIMENT = {
    "name": "fixture",
    "seeds": [0, 1, 2],
    "tasks": {"coin_flip": {"kind": "coin_flip", "n_people": 1, "train_size": 2, "eval_size": 8, "name_pool": 50}},
    "methods": {"rar_1step": {"kind": "rar_1step"}},
}


def _generations(
    system: str, method: str, items: list[dict[str, str]], answers: list[str], tokens: int
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task": "coin_flip",
            "method": method,
            "system": system,
            "split": "eval",
            "input_id": [i["input_id"] for i in items],
            "variant_id": 0,
            "sample_idx": 0,
            "steps": "[]",
            "output": answers,
            "answer": answers,
            "prompt_tokens": 10,
            "completion_tokens": tokens,
            "seconds": 0.01,
            "cache_key": [f"{system}-{i['input_id']}" for i in items],
        }
    )


def fixture_warehouse(path: Path, experiment_file: Path) -> None:
    """Three seeds: System 1 always says "yes"; System 2 is wrong on `seed` items; distilled on one item."""
    experiment = parse_experiment(EXPERIMENT, experiment_file)
    for replicate in experiment.replicates():
        warehouse = Warehouse(path, experiment=replicate.name)
        inputs = build_task(replicate.tasks["coin_flip"]).build_inputs()
        frame = pl.DataFrame(
            {
                "task": "coin_flip",
                "split": [i.split for i in inputs],
                "input_id": [i.input_id for i in inputs],
                "prompt": [i.prompt for i in inputs],
                "reference": [i.reference for i in inputs],
                "meta": [json.dumps(i.meta) for i in inputs],
            }
        )
        items = [{"input_id": i.input_id, "reference": i.reference} for i in inputs if i.split == "eval"]
        flip = {"yes": "no", "no": "yes"}
        s2 = [flip[i["reference"]] if k < replicate.seed else i["reference"] for k, i in enumerate(items)]
        distilled = [flip[i["reference"]] if k == 0 else i["reference"] for k, i in enumerate(items)]
        warehouse.replace_tables(
            [
                ("inputs", {"task": "coin_flip"}, frame),
                (
                    "generations",
                    {"task": "coin_flip", "method": "system1"},
                    _generations("system1", "system1", items, ["yes"] * 8, 2),
                ),
                (
                    "generations",
                    {"task": "coin_flip", "method": "rar_1step"},
                    pl.concat(
                        [
                            _generations("system2", "rar_1step", items, s2, 40),
                            _generations("distilled", "rar_1step", items, distilled, 2),
                        ]
                    ),
                ),
                (
                    "evaluations",
                    {"task": "coin_flip", "method": "rar_1step"},
                    pl.DataFrame(
                        {
                            "task": "coin_flip",
                            "method": "rar_1step",
                            "system": ["system1", "system2", "distilled"],
                            "split": "eval",
                            "n": [8, 8, 8],
                            "accuracy": [0.5, 1 - replicate.seed / 8, 7 / 8],
                            "mean_tokens": [2.0, 40.0, 2.0],
                            "train_examples": [None, None, 2],
                        },
                        schema_overrides={"train_examples": pl.Int32, "n": pl.Int32},
                    ),
                ),
            ]
        )


@pytest.mark.timeout(60)
def test_report_has_mean_sd_and_n_over_three_seeds(tmp_path: Path) -> None:
    experiment_file = write_experiment(tmp_path / "fixture.yaml", EXPERIMENT)
    warehouse = tmp_path / "warehouse.duckdb"
    fixture_warehouse(warehouse, experiment_file)
    output = tmp_path / "results.md"
    text = results_doc.write_report(warehouse, [experiment_file], output)
    assert output.read_text() == text
    table = {line.split(" | ")[2]: line for line in text.splitlines() if line.startswith("| coin_flip | rar_1step |")}
    # System 2 is wrong on 0, 1 and 2 of 8 items: 100, 87.5 and 75 % -> 87.5 ± 12.5 over the seeds.
    assert "87.5 ± 12.5%" in table["System 2"]
    assert "| 8 × 3 |" in table["System 2"]
    # distilled: 7 of 8 in every seed -> no spread; System 1 answers "yes" to everything.
    assert "87.5 ± 0.0%" in table["distilled System 1"]
    assert "`yes` 100%" in table["System 1"]
    assert "top answer per seed: `yes` 100%, `yes` 100%, `yes` 100%" in table["System 1"]
    # The majority class beside accuracy: the share of the eval split's most common reference.
    header = next(line for line in text.splitlines() if line.startswith("| task | method | system |")).split(" | ")
    assert table["System 1"].split(" | ")[header.index("majority class")].endswith("%")
    # What was read beside accuracy: every answer parsed; the fixture's rows carry no finish_reason (unknown).
    assert table["System 2"].split(" | ")[header.index("parsed")] == "100.0%"
    assert table["System 2"].split(" | ")[header.index("truncated")] == "n/a"
    assert "seeds 0, 1, 2" in text
    assert "see paper Table 1" in text  # coin flip with RaR: the paper's table is named, no number guessed
    # Regenerating keeps the hand-written text outside the blocks.
    output.write_text(text + "\nA note written by hand.\n")
    again = results_doc.write_report(warehouse, [experiment_file], output)
    assert "A note written by hand." in again
    assert again.count(results_doc.BEGIN.format("header")) == 1


COCONUT = {
    "name": "coconut_fixture",
    "seeds": [0, 1, 2],
    "tasks": {},
    "methods": {},
    "coconut": {"task": {"kind": "prosqa", "train_size": 2, "eval_size": 10, "n_nodes": 6, "min_hops": 1}},
}


def coconut_warehouse(path: Path, experiment_file: Path) -> dict[str, list[float]]:
    """Three seeds of Coconut rows: Coconut right on `seed + 7` of 10 items, No-CoT always names the
    other option, CoT a concept that is not an option, pause tokens always the first option offered."""
    from s2d_assets.coconut.stages import final_answer, write_data
    from s2d_assets.core.paths import StatePaths
    from s2d_assets.distill.context import StageContext
    from s2d_assets.distill.rows import store_evaluations, store_generations

    experiment = parse_experiment(COCONUT, experiment_file)
    accuracy: dict[str, list[float]] = {}
    for replicate in experiment.replicates():
        ctx = StageContext(replicate, StatePaths(path.parent))
        write_data(ctx)
        records = ctx.inputs("prosqa", "eval")
        rows = []
        for system in ("no_cot", "cot", "pause", "coconut"):
            outputs = []
            for k, record in enumerate(records):
                reference, parsed = record["reference"], record["meta"]
                other = next(o for o in parsed["options"] if o != reference.rstrip(".").split()[-1])
                outputs.append(
                    {
                        "no_cot": f"{parsed['entity']} is a {other}.",
                        "cot": f"{parsed['entity']} is a nothing.",
                        "pause": f"{parsed['entity']} is a {parsed['options'][0]}.",
                        "coconut": reference if k < replicate.seed + 7 else f"{parsed['entity']} is a {other}.",
                    }[system]
                )
            answers = [final_answer(o) == final_answer(r["reference"]) for o, r in zip(outputs, records, strict=True)]
            accuracy.setdefault(system, []).append(100 * sum(answers) / len(answers))
            n = len(records)
            generations = {
                "input_id": [r["input_id"] for r in records],
                "variant_id": [0] * n,
                "sample_idx": [0] * n,
                "steps": ["[]"] * n,
                "output": outputs,
                "answer": [final_answer(o) for o in outputs],
                "prompt_tokens": [5] * n,
                "completion_tokens": [4] * n,
                "seconds": [0.0] * n,
                "cache_key": [None] * n,
            }
            store_generations(ctx, "prosqa", "coconut", system, "eval", generations)
            rows.append(
                {"task": "prosqa", "method": "coconut", "system": system, "split": "eval", "n": n,
                 "accuracy": sum(answers) / n, "mean_tokens": 4.0, "seconds_per_item": 0.0,
                 "checkpoint": "", "train_examples": 2}
            )  # fmt: skip
        store_evaluations(ctx, "prosqa", "coconut", rows)
    return accuracy


def test_report_has_coconut_over_three_seeds_beside_the_papers_table(tmp_path: Path) -> None:
    path = write_experiment(tmp_path / "coconut.yaml", COCONUT)
    warehouse = tmp_path / "state" / "warehouse.duckdb"
    accuracy = coconut_warehouse(warehouse, path)
    assert accuracy["coconut"] == [70.0, 80.0, 90.0]
    text = results_doc.render(results_doc.build_blocks(warehouse, [path]))
    assert "## Coconut" in text and "`coconut.yaml` (seeds 0, 1, 2)" in text  # the header lists it with its seeds
    assert str(tmp_path) not in text  # a file outside the repository: its name, never the machine's path
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    assert rows["Coconut"][1] == "80.0 ± 10.0%" and rows["Coconut"][2] == "10 × 3"
    assert rows["Coconut"][-2:] == ["97.0 ± 0.3%", "14.2 |"]  # the paper's Table 1, ProsQA
    assert rows["No-CoT"][1] == "0.0 ± 0.0%" and rows["No-CoT"][5] == "0% / 100% / 0%"
    assert rows["CoT"][5] == "0% / 0% / 100%"
    # Pause tokens always name the first option offered: exactly the constant-answer baseline's
    # first half; the baseline is the better of always-first and always-second.
    pause = statistics.fmean(accuracy["pause"])
    constant = statistics.fmean(max(a, 100 - a) for a in accuracy["pause"])
    assert rows["Pause tokens"][1].startswith(f"{pause:.1f}")
    assert rows["Coconut"][3] == f"{constant:.1f}%"
