"""Results show what was read: parsed answers, accuracy over them, truncation, and what each pool holds.

Hand-built warehouse rows (no model): generations with ``finish_reason`` written directly, a pool
curated from hand-written samples, and the numbers every table should show worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.curate import BALANCE_ANSWERS, pool_summary
from s2d_assets.distill.reading import Reading
from s2d_assets.report import results_doc
from s2d_assets.report.results_table import print_results
from s2d_assets.tasks import build_task
from s2d_assets_tests.conftest import write_experiment

TASK = {"kind": "coin_flip", "n_people": 1, "train_size": 4, "eval_size": 8, "name_pool": 50}
# References written by hand (overriding the generated ones), in input_id order.
EVAL_REFERENCES = ["yes", "yes", "no", "no", "yes", "no", "yes", "no"]
TRAIN_REFERENCES = ["yes", "no", "no", "yes"]
# System 1 always says "yes" and its engine never said how its answers ended (NULL).
SYSTEM1 = [("yes", None)] * 8
# System 2: items 0-1 cut off without an answer, 2 ended without one, 3 cut off after a wrong answer,
# 4-7 right and complete. accuracy 4/8; parsed 5/8 = 62.5%, 4 of them right = 80.0%;
# truncated 3/8 = 37.5% (items 0, 1, 3); unparsed, not truncated 1/8 = 12.5% (item 2).
SYSTEM2 = [(None, "length"), (None, "length"), (None, "stop"), ("yes", "length")] + [
    (r, "stop") for r in EVAL_REFERENCES[4:]
]
# Distilled: wrong on item 0, every answer parsed, item 7's end unknown.
DISTILLED = [("no", "stop")] + [(r, "stop") for r in EVAL_REFERENCES[1:7]] + [(EVAL_REFERENCES[7], None)]
# Train samples: input 0 is kept on one parsed vote ("yes"), input 1 kept "yes" (3 of 4, wrong: its
# reference is "no"), input 2 kept "no" (right), input 3 has no parsed answer.
TRAIN_SAMPLES = [["yes", None, None], ["yes", "yes", "yes", "no"], ["no", "no"], [None, None]]


def _experiment(name: str) -> dict[str, object]:
    return {"name": name, "tasks": {"coin": TASK}, "methods": {"rar": {"kind": "rar_1step"}}}


def _generations(system: str, method: str, split: str, rows: list[tuple[str, int, str | None, str | None]]):  # type: ignore[no-untyped-def]
    """``rows``: (input_id, sample_idx, answer, finish_reason)."""
    return pl.DataFrame(
        {
            "task": "coin", "method": method, "system": system, "split": split,
            "input_id": [r[0] for r in rows], "variant_id": 0, "sample_idx": [r[1] for r in rows], "steps": "[]",
            "output": [r[2] or "hmm" for r in rows], "answer": [r[2] for r in rows], "prompt_tokens": 10,
            "completion_tokens": 5, "seconds": 0.01, "cache_key": None, "finish_reason": [r[3] for r in rows],
        },
        schema_overrides={"answer": pl.String, "finish_reason": pl.String, "cache_key": pl.String},
    )  # fmt: skip


def write_fixture(root: Path, name: str, full: bool, train_references: list[str] = TRAIN_REFERENCES) -> StageContext:
    """One experiment's rows by hand; ``full``: with a curated pool, a distilled system and evaluation rows."""
    experiment = parse_experiment(_experiment(name))
    ctx = StageContext(experiment, StatePaths(root))
    inputs = build_task(experiment.tasks["coin"]).build_inputs()
    eval_ids = sorted(i.input_id for i in inputs if i.split == "eval")
    train_ids = sorted(i.input_id for i in inputs if i.split == "train")
    reference = dict(zip(eval_ids, EVAL_REFERENCES, strict=True)) | dict(zip(train_ids, train_references, strict=True))
    frame = pl.DataFrame(
        {
            "task": "coin",
            "split": [i.split for i in inputs],
            "input_id": [i.input_id for i in inputs],
            "prompt": [i.prompt for i in inputs],
            "reference": [reference[i.input_id] for i in inputs],
            "meta": [json.dumps(i.meta) for i in inputs],
        }
    )
    ctx.warehouse.replace_rows("inputs", {"task": "coin"}, frame)

    def answered(given: list[tuple[str | None, str | None]]) -> list[tuple[str, int, str | None, str | None]]:
        return [(i, 0, answer, end) for i, (answer, end) in zip(eval_ids, given, strict=True)]

    ctx.warehouse.replace_rows(
        "generations",
        {"task": "coin", "method": "system1"},
        _generations("system1", "system1", "eval", answered(SYSTEM1)),
    )
    rar = [_generations("system2", "rar", "eval", answered(SYSTEM2))]
    if full:
        rar.append(_generations("distilled", "rar", "eval", answered(DISTILLED)))
        samples = [
            (i, k, a, "stop") for i, given in zip(train_ids, TRAIN_SAMPLES, strict=True) for k, a in enumerate(given)
        ]
        rar.append(_generations("system2", "rar", "train", samples))
    ctx.warehouse.replace_rows("generations", {"task": "coin", "method": "rar"}, pl.concat(rar))
    if full:
        evaluations = pl.DataFrame(
            {"task": "coin", "method": "rar", "system": ["system1", "system2", "distilled"], "split": "eval", "n": 8,
             "accuracy": [0.5, 0.5, 0.875], "mean_tokens": 5.0, "train_examples": [None, None, 3]},
            schema_overrides={"n": pl.Int32, "train_examples": pl.Int32},
        )  # fmt: skip
        ctx.warehouse.replace_rows("evaluations", {"task": "coin", "method": "rar"}, evaluations)
    return ctx


def test_a_reading_counts_each_outcome_once() -> None:
    answers = [a for a, _ in SYSTEM2]
    reading = Reading.of(
        answers, [a == r for a, r in zip(answers, EVAL_REFERENCES, strict=True)], [e for _, e in SYSTEM2]
    )
    assert (reading.parsed, reading.correct_parsed, reading.truncated, reading.unparsed_truncated) == (5, 4, 3, 2)
    assert reading.accuracy_parsed == 0.8 and reading.truncation_rate == 0.375 and reading.unparsed_not_truncated == 1
    # parsed + unparsed-truncated + unparsed-not-truncated = every answer
    assert reading.parsed + reading.unparsed_truncated + reading.unparsed_not_truncated == reading.n
    assert reading.columns() == {
        "n_parsed": 5, "accuracy_parsed": 0.8, "n_truncated": 3, "n_unparsed_truncated": 2,
        "n_finish_unknown": 0, "truncation_rate": 0.375,
    }  # fmt: skip
    # Unknown ends are never read as "stop": no rate, and no count at all when none is known.
    unknown = Reading.of([None, "yes"], [False, True], [None, None])
    assert unknown.truncation_rate is None and unknown.truncated_text() == "n/a"
    assert unknown.columns()["n_truncated"] is None and unknown.columns()["n_finish_unknown"] == 2
    assert unknown.unparsed_text() == "n/a (unparsed 50.0%)"
    partly = Reading.of(["yes", "no", None], [True, True, False], ["length", None, "stop"])
    assert partly.truncation_rate is None and partly.truncated_text() == "n/a (1 of 2 known cut off, 1 unknown)"
    assert Reading.of([], [], []).accuracy_parsed_text() == "—"


def test_the_pool_reports_single_votes_balance_and_accuracy_without_selecting_by_it(tmp_path: Path) -> None:
    ctx = write_fixture(tmp_path / "state", "pooled", full=True)
    result = distill.curate(ctx, "coin", "rar")
    meta = result.metadata
    assert meta["kept"] == 3 and meta["kept_on_one_vote"] == 1  # input 0: "yes" from one parsed sample
    assert json.loads(meta["answer_balance"]) == {"yes": 0.6667, "no": 0.3333}  # yes, yes, no
    assert (meta["pool_accuracy"], meta["pool_labelled"]) == (0.6667, 3)  # input 1's "yes" is wrong
    assert "never used to select" in meta["pool_accuracy_note"]
    pool = ctx.warehouse.query("SELECT * FROM curated_pool ORDER BY input_id").rows()
    # Other references: the same pool (selection reads no label), another accuracy.
    flipped = write_fixture(tmp_path / "state", "pooled", full=True, train_references=["no", "yes", "yes", "no"])
    again = distill.curate(flipped, "coin", "rar").metadata
    assert flipped.warehouse.query("SELECT * FROM curated_pool ORDER BY input_id").rows() == pool
    assert again["pool_accuracy"] == 0.3333 and again["kept_on_one_vote"] == 1


def test_pool_summary_lists_the_top_answers_and_sums_the_rest() -> None:
    task = build_task(parse_experiment(_experiment("x")).tasks["coin"])
    pool = [
        {"input_id": str(k), "answer": f"a{k}", "votes": json.dumps({f"a{k}": 2}), "kept": True}
        for k in range(BALANCE_ANSWERS + 2)
    ] + [{"input_id": "x", "answer": None, "votes": "{}", "kept": False}]
    summary = pool_summary(task, pool, {})
    assert summary["kept"] == 7 and summary["kept_on_one_vote"] == 0
    assert len(summary["answer_balance"]) == BALANCE_ANSWERS + 1 and summary["answer_balance"]["(other)"] == 0.2857
    assert summary["pool_accuracy"] is None and summary["pool_labelled"] == 0  # no reference: not scored


def test_the_report_shows_what_was_read_per_system_and_pool_and_no_machine_path(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ctx = write_fixture(state, "full", full=True)
    distill.curate(ctx, "coin", "rar")
    write_fixture(state, "sweepfix", full=False)
    files = [write_experiment(tmp_path / f"{n}.yaml", _experiment(n)) for n in ("full", "sweepfix")]
    text = results_doc.render(results_doc.build_blocks(ctx.paths.warehouse, files))
    assert str(tmp_path) not in text  # the header names files, never where this machine keeps them
    assert "from the warehouse `warehouse.duckdb`" in text and "`full.yaml` (seeds 0)" in text
    header = next(line for line in text.splitlines() if line.startswith("| task | method | system | accuracy"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {
        line.split(" | ")[2]: dict(zip(columns, [c.strip() for c in line.strip("|").split("|")], strict=True))
        for line in text.splitlines()
        if line.startswith("| coin | rar | ") and line.count(" | ") == len(columns) - 1  # not the gap or pool table
    }
    s1, s2, distilled = rows["System 1"], rows["System 2"], rows["distilled System 1"]
    assert (s2["accuracy"], s2["accuracy on parsed"], s2["parsed"]) == ("50.0% (1 seed)", "80.0% of 5", "62.5%")
    assert (s2["truncated"], s2["unparsed, not truncated"]) == ("37.5%", "12.5%")
    assert (s1["parsed"], s1["truncated"], s1["accuracy on parsed"]) == ("100.0%", "n/a", "50.0% of 8")
    assert s1["unparsed, not truncated"] == "0.0%"  # every answer parsed: nothing unparsed, whatever the ends
    assert distilled["truncated"] == "n/a (0 of 7 known cut off, 1 unknown)"
    pool = next(line for line in text.splitlines() if line.startswith("| coin | rar | 3 |"))
    assert pool == "| coin | rar | 3 | 1 | `yes` 67% / `no` 33% | 66.7% of 3 |"
    assert "analysis only" in text and "never used to select" in text
    # The sweep table: System 1 → System 2 parsed and truncated, and System 2 on its parsed answers.
    sweep = next(line for line in text.splitlines() if line.startswith("| sweepfix |"))
    assert "| 50.0 ± 17.7 | 50.0 ± 17.7 | 80.0% of 5 | 100.0% → 62.5% | n/a → 37.5% |" in sweep


@pytest.mark.timeout(60)
def test_s2d_results_shows_parsed_and_truncation_with_unknown_as_na(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "state" / "warehouse.duckdb"
    rows = pl.DataFrame(
        {"task": "coin", "method": "rar", "system": ["system1", "system2"], "split": "eval", "n": 8,
         "accuracy": [0.5, 0.5], "parse_rate": [1.0, 0.625], "n_parsed": [8, 5], "accuracy_parsed": [0.5, 0.8],
         "truncation_rate": [None, 0.375]},
        schema_overrides={"n": pl.Int32, "n_parsed": pl.Int32, "truncation_rate": pl.Float64},
    )  # fmt: skip
    from s2d_assets.core.warehouse import Warehouse

    Warehouse(warehouse, experiment="e").replace_rows("evaluations", {"task": "coin", "method": "rar"}, rows)
    print_results(warehouse, "e", "json")
    parsed = {r["system"]: r for r in json.loads(capsys.readouterr().out)}
    assert (parsed["system2"]["parsed_pct"], parsed["system2"]["n_parsed"]) == (62.5, 5)
    assert (parsed["system2"]["accuracy_parsed_pct"], parsed["system2"]["truncated_pct"]) == (80.0, 37.5)
    assert parsed["system1"]["truncated_pct"] is None  # machine formats: unknown is null, never 0
    print_results(warehouse, "e", "markdown")
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    system1 = dict(zip(header, [c.strip() for c in lines[2].strip("|").split("|")], strict=True))
    assert system1["system"] == "system1" and system1["truncated_pct"] == "n/a"
