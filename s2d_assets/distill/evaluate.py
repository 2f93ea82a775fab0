"""Stage 7, evaluation: System 1, System 2 and the distilled System 1 on the labelled eval split.

Per system: accuracy (for pairwise judging: agreement with the labels), mean generated tokens and
seconds per item, and the baselines that expose a degenerate result beside it — the eval split's
majority-class rate (what always giving its most common reference scores) and the system's own
answer distribution (its most common answer and that answer's share, the top answers with their
shares, the parse rate). Beside plain accuracy, what was read (``distill/reading.py``): how many
answers parsed and the accuracy over them, and the share of answers cut off at the token budget
(``generations.finish_reason = 'length'``; ``n/a`` when the engine did not record it). Tasks whose
inputs carry evaluation groups (e.g. factual QA's opinion bias) also get one ``evaluation_groups``
row per (system, group), written in the same transaction.

An empty pool trains nothing (checkpoint mode ``none``): the distilled row then says
``status = 'untrained'`` with no score, instead of scoring the base model under that name.
For pairwise judging the verdicts are also taken in both orders (position consistency), and
BSM's ``position_inconsistent`` judgments (no verdict) are counted as ``discarded``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from s2d_assets.core.base_models import BaseModel
from s2d_assets.core.checkpoints import read_manifest
from s2d_assets.core.fingerprint import rows_hash
from s2d_assets.core.stage_result import StageResult, markdown_table
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.generate import SYSTEM1_BASELINE, answer_eval_split
from s2d_assets.distill.judging import position_metrics
from s2d_assets.distill.reading import NOT_KNOWN, Reading
from s2d_assets.distill.rows import store_evaluations, store_generations
from s2d_assets.methods import system1_for
from s2d_assets.tasks import EVAL
from s2d_assets.tasks.judging import POSITION_INCONSISTENT

TRAINED, UNTRAINED = "trained", "untrained"
UNPARSED = "(unparsed)"
TOP_ANSWERS = 5  # answers listed in ``answer_distribution``
SYSTEMS = ("system1", "system2", "distilled")


def evaluate(ctx: StageContext, task_name: str, method_name: str, base: BaseModel, checkpoint: Path) -> StageResult:
    task = ctx.task(task_name)
    items = ctx.inputs(task_name, EVAL)
    s1_method = system1_for(task.judges_pairs, ctx.experiment.evaluation.system1_answer)
    s2_engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/{method_name}/eval")
    s2_frame, system2 = answer_eval_split(ctx, task_name, method_name, "system2", ctx.method(method_name), s2_engine)
    manifest = read_manifest(checkpoint)
    trained = manifest["mode"] != "none"
    distilled_engine = None
    frames = {"system1": _system1_generations(ctx, task_name), "system2": s2_frame}
    summaries: dict[str, dict[str, Any]] = {"system1": _summary(task, items, frames["system1"]), "system2": system2}
    if trained:
        adapter = checkpoint if manifest["mode"] == "lora" else None
        distilled_engine = ctx.cached_engine(
            base.path if adapter else checkpoint,
            str(manifest["fingerprint"]),
            adapter,
            f"{task_name}/{method_name}/distilled",
        )
        frames["distilled"], summaries["distilled"] = answer_eval_split(
            ctx, task_name, method_name, "distilled", s1_method, distilled_engine
        )
    else:  # nothing was distilled: no distilled answers (and none left over from an earlier, trained run)
        store_generations(ctx, task_name, method_name, "distilled", EVAL, {})
    judged: dict[str, float | None] = {}
    if task.judges_pairs:  # verdicts in both orders: position consistency
        base_engine = ctx.cached_engine(base.path, base.fingerprint, None, f"{task_name}/system1")
        for system, method, engine in (
            ("system1", s1_method, base_engine),
            ("system2", ctx.method(method_name), s2_engine),
            ("distilled", s1_method, distilled_engine),
        ):
            if engine is None:
                continue
            metrics = position_metrics(
                task,  # type: ignore[arg-type]
                method,
                engine,
                items,
                ctx.experiment.evaluation.temperature,
                ctx.experiment.sampling.top_p,
                ctx.experiment.seed,
            )
            judged |= {f"{system}_{name}": value for name, value in metrics.items()}

    majority_answer, majority_rate = majority_class(task, [str(i["reference"] or "") for i in items])
    finish = _finish_reasons(ctx, task_name, method_name)
    rows, group_rows = [], []
    for system in SYSTEMS:
        row: dict[str, Any] = {
            "task": task_name,
            "method": method_name,
            "system": system,
            "split": EVAL,
            "majority_answer": majority_answer,
            "majority_rate": majority_rate,
            "answer_mode": ctx.method(method_name).answer if system == "system2" else s1_method.answer,
        }
        if system == "distilled":
            row |= {
                "checkpoint": str(checkpoint),
                "train_examples": int(manifest["pool_size"]),
                "status": TRAINED if trained else UNTRAINED,
            }
        if system in frames:
            answers = _answers_by_input(frames[system])
            got = [answers.get(i["input_id"]) for i in items]
            correct = [task.is_correct(a, i["reference"]) for a, i in zip(got, items, strict=True)]
            ends = [finish.get((system, i["input_id"])) for i in items]
            row |= {**summaries[system], **answer_baselines(got), **Reading.of(got, correct, ends).columns()}
            group_rows += _group_rows(task, items, answers, {k: row[k] for k in ("task", "method", "system", "split")})
        else:
            row |= {"n": len(items)}  # untrained: no score, no answers
        rows.append(row)
    frame, groups = store_evaluations(ctx, task_name, method_name, rows, group_rows)
    return StageResult(
        data_version=rows_hash(frame.select("system", "n", "accuracy", "mean_tokens").rows()),
        metadata=_metadata(frame, groups, judging=task.judges_pairs)
        | {"cache_misses": s2_engine.stats.misses + (distilled_engine.stats.misses if distilled_engine else 0)}
        | {key: value for key, value in judged.items() if value is not None},
        markdown=_markdown(frame, groups),
    )


def majority_class(task: Any, references: Sequence[str]) -> tuple[str | None, float | None]:
    """The most common reference and the accuracy of answering it to every item (``None`` without labels)."""
    labelled = [r for r in references if r]
    if not labelled:
        return None, None
    answer, _ = Counter(labelled).most_common(1)[0]
    return answer, sum(task.is_correct(answer, r) for r in labelled) / len(references)


def answer_baselines(answers: Sequence[str | None]) -> dict[str, Any]:
    """A system's answer distribution: its most common parsed answer and that answer's share of all items,
    the top answers with their shares (unparsed items as ``(unparsed)``), the parse rate, BSM's discards."""
    n = len(answers)
    counts = Counter(UNPARSED if a is None else a for a in answers)
    parsed = Counter({a: c for a, c in counts.items() if a not in (UNPARSED, POSITION_INCONSISTENT)})
    top = parsed.most_common(1)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ANSWERS]
    return {
        "top_answer": top[0][0] if top else None,
        "top_answer_share": top[0][1] / n if top and n else 0.0,
        "answer_distribution": json.dumps({a: round(c / n, 4) for a, c in ranked}),
        "parse_rate": (n - counts.get(UNPARSED, 0)) / n if n else 0.0,
        "discarded": counts.get(POSITION_INCONSISTENT, 0),
    }


def item_groups(meta: dict[str, Any]) -> list[str]:
    """The evaluation groups an item belongs to: its opinion bias and biased/unbiased, plus any it names."""
    groups = [str(g) for g in meta.get("eval_groups", ())]
    bias = meta.get("bias")
    if bias is not None:
        groups += [str(bias), "unbiased" if bias == "none" else "biased"]
    return list(dict.fromkeys(groups))


def _group_rows(
    task: Any, items: Sequence[dict[str, Any]], answers: dict[str, str | None], keys: dict[str, str]
) -> list[dict[str, Any]]:
    members: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        for group in item_groups(item["meta"]):
            members.setdefault(group, []).append(item)
    rows = []
    for group, group_items in sorted(members.items()):
        got = [answers.get(i["input_id"]) for i in group_items]
        references = [str(i["reference"] or "") for i in group_items]
        correct = sum(task.is_correct(a, r) for a, r in zip(got, references, strict=True))
        rows.append(
            {
                **keys,
                "group_name": group,
                "n": len(group_items),
                "accuracy": correct / len(group_items),
                "majority_rate": majority_class(task, references)[1],
                "top_answer_share": answer_baselines(got)["top_answer_share"],
            }
        )
    return rows


def _answers_by_input(frame: pl.DataFrame) -> dict[str, str | None]:
    return dict(zip(frame["input_id"].to_list(), frame["answer"].to_list(), strict=True)) if frame.height else {}


def _finish_reasons(ctx: StageContext, task_name: str, method_name: str) -> dict[tuple[str, str], str | None]:
    """(system, input_id) -> how each system's eval answer ended (``stop``, ``length``, None = unknown)."""
    rows = ctx.warehouse.query(
        "SELECT system, input_id, finish_reason FROM generations WHERE experiment = ? AND task = ? AND split = ? "
        "AND ((method = ? AND system = 'system1') OR (method = ? AND system IN ('system2', 'distilled')))",
        [ctx.experiment.name, task_name, EVAL, SYSTEM1_BASELINE, method_name],
    )
    return {(system, input_id): end for system, input_id, end in rows.iter_rows()}


def _system1_generations(ctx: StageContext, task_name: str) -> pl.DataFrame:
    """The System 1 baseline's answers, from the generations its own stage stored."""
    baseline = ctx.warehouse.query(
        "SELECT input_id, output, answer, completion_tokens, seconds FROM generations "
        "WHERE experiment = ? AND task = ? AND method = ? AND system = 'system1' AND split = ?",
        [ctx.experiment.name, task_name, SYSTEM1_BASELINE, EVAL],
    )
    if baseline.height == 0:
        raise RuntimeError(
            f"{task_name}: the System 1 baseline generations are missing; materialise s1_generations first"
        )
    return baseline


def _summary(task: Any, items: Sequence[dict[str, Any]], frame: pl.DataFrame) -> dict[str, Any]:
    references = {i["input_id"]: i["reference"] for i in items}
    answers = _answers_by_input(frame)
    correct = sum(task.is_correct(answers.get(i), r) for i, r in references.items())
    return {
        "n": frame.height,
        "accuracy": correct / frame.height,
        "mean_tokens": float(frame["completion_tokens"].mean() or 0.0),
        "seconds_per_item": float(frame["seconds"].mean() or 0.0),
    }


def _metadata(frame: pl.DataFrame, groups: pl.DataFrame, judging: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    first = frame.row(0, named=True)
    if first["majority_rate"] is not None:
        metadata |= {"majority_answer": first["majority_answer"], "majority_rate": round(first["majority_rate"], 4)}
    for row in frame.iter_rows(named=True):
        system = row["system"]
        if row["status"] == UNTRAINED:
            metadata[f"{system}_status"] = "untrained: the pool was empty, nothing was distilled (no score)"
            continue
        if row["status"] is not None:
            metadata[f"{system}_status"] = row["status"]
        reading = reading_of(row)
        metadata |= {
            f"{system}_accuracy": round(row["accuracy"], 4),
            f"{system}_parse_rate": round(row["parse_rate"], 4),
            f"{system}_n_parsed": row["n_parsed"],
            f"{system}_accuracy_parsed": NOT_KNOWN
            if row["accuracy_parsed"] is None
            else round(row["accuracy_parsed"], 4),
            f"{system}_truncation_rate": NOT_KNOWN
            if row["truncation_rate"] is None
            else round(row["truncation_rate"], 4),
            f"{system}_truncated": reading.truncated_text(),
            f"{system}_unparsed_not_truncated": reading.unparsed_text(),
            f"{system}_top_answer": row["top_answer"] or "",
            f"{system}_top_answer_share": round(row["top_answer_share"], 4),
            f"{system}_answer_distribution": row["answer_distribution"],
        }
        if judging or row["discarded"]:  # judgments without a verdict: BSM's two orders disagreed
            metadata[f"{system}_position_inconsistent_discards"] = row["discarded"]
    for row in groups.iter_rows(named=True):
        metadata[f"{row['system']}_accuracy[{row['group_name']}]"] = round(row["accuracy"], 4)
    return metadata


def reading_of(row: dict[str, Any]) -> Reading:
    """The ``Reading`` an ``evaluations`` row was written from (what its columns keep of it)."""
    n, parsed, unknown = int(row["n"] or 0), int(row["n_parsed"] or 0), row["n_finish_unknown"]
    accuracy = row["accuracy_parsed"]
    return Reading(
        n=n,
        parsed=parsed,
        correct_parsed=round(accuracy * parsed) if accuracy is not None else 0,
        truncated=int(row["n_truncated"] or 0),
        unparsed_truncated=int(row["n_unparsed_truncated"] or 0),
        unknown=n if unknown is None else int(unknown),
    )


def _markdown(frame: pl.DataFrame, groups: pl.DataFrame) -> dict[str, str]:
    readings = [reading_of(r) if r["n_parsed"] is not None else None for r in frame.iter_rows(named=True)]
    table = frame.select(
        "system",
        "status",
        "n",
        (pl.col("accuracy") * 100).round(1).alias("accuracy_%"),
        pl.Series("parsed", [r.parsed_text() if r else "" for r in readings]),
        pl.Series("accuracy_on_parsed", [r.accuracy_parsed_text() if r else "" for r in readings]),
        pl.Series("truncated", [r.truncated_text() if r else "" for r in readings]),
        pl.Series("unparsed_not_truncated", [r.unparsed_text() if r else "" for r in readings]),
        (pl.col("majority_rate") * 100).round(1).alias("majority_class_%"),
        pl.col("top_answer"),
        (pl.col("top_answer_share") * 100).round(1).alias("top_answer_%"),
        pl.col("mean_tokens").round(1),
        pl.col("seconds_per_item").round(3),
        "train_examples",
    )
    markdown = {"evaluation": markdown_table(table)}
    if groups.height:
        markdown["evaluation_groups"] = markdown_table(
            groups.select(
                "group_name",
                "system",
                "n",
                (pl.col("accuracy") * 100).round(1).alias("accuracy_%"),
                (pl.col("majority_rate") * 100).round(1).alias("majority_class_%"),
                (pl.col("top_answer_share") * 100).round(1).alias("top_answer_%"),
            ).sort("group_name", "system")
        )
    return markdown
