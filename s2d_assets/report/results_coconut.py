"""The results document's Coconut block: each system over the seeds, beside the paper's Table 1.

The rows come from the warehouse: the evaluation rows Coconut's evaluation writes (``evaluations``,
method ``coconut``, one per system and seed), its answers (``generations``) and the eval split
(``inputs``, whose ``meta`` names the entity and the two options of a ProsQA question). Besides
accuracy (mean ± sample standard deviation over the seeds) it shows what a constant answer
scores: for ProsQA always taking the first (or always the second) option offered, for ProntoQA
always answering the more common of True/False; and for ProsQA where the answers went (the
correct option, the other option, a concept that is not an option). No Dagster here.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from s2d_assets.coconut.stages import METHOD, final_answer
from s2d_assets.report.results_blocks import display_path, mean_sd
from s2d_assets.report.results_data import Source

# Hao et al. 2024 (arXiv 2412.06769), Table 1, GPT-2: (accuracy %, its ± over the paper's runs,
# generated tokens per item). The paper's pause-token baseline is the "Pause Token" row.
PAPER_MODEL = "GPT-2"
PAPER_TABLE_1: dict[tuple[str, str], tuple[float, float, float]] = {
    ("prosqa", "no_cot"): (76.7, 1.0, 8.2),
    ("prosqa", "cot"): (77.5, 1.9, 49.4),
    ("prosqa", "pause"): (75.9, 0.7, 8.2),
    ("prosqa", METHOD): (97.0, 0.3, 14.2),
    ("prontoqa", "no_cot"): (93.8, 0.7, 3.0),
    ("prontoqa", "cot"): (98.8, 0.8, 92.5),
    ("prontoqa", "pause"): (77.7, 21.0, 3.0),
    ("prontoqa", METHOD): (99.8, 0.2, 9.0),
}
SYSTEMS = {"no_cot": "No-CoT", "cot": "CoT", "pause": "Pause tokens", METHOD: "Coconut"}
ANSWER_KINDS = ("correct option", "other option", "not an option")


@dataclass
class CoconutResults:
    source: Source
    seeds_found: list[int]
    task: str
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # system -> % per seed
    tokens: dict[str, list[float]] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    constant: list[float] = field(default_factory=list)  # per seed: the best constant answer's %
    answers: dict[str, Counter[str]] = field(default_factory=dict)


def collect_coconut(con: duckdb.DuckDBPyConnection, source: Source) -> CoconutResults | None:
    """The Coconut rows of the experiment's seeds, or None when none has been evaluated yet."""
    spec = source.experiment.coconut
    if spec is None:
        return None
    task = spec.task_name
    seeds = {r.name: r.seed for r in source.replicates}
    rows = con.execute(
        "SELECT experiment, system, n, accuracy, mean_tokens FROM evaluations "
        "WHERE method = ? AND task = ? AND list_contains(?, experiment) ORDER BY experiment, system",
        [METHOD, task, list(seeds)],
    ).fetchall()
    if not rows:
        return None
    results = CoconutResults(source, sorted({seeds[r[0]] for r in rows}), task)
    for _name, system, n, accuracy, tokens in rows:
        results.accuracy.setdefault(system, []).append(100 * float(accuracy))
        results.tokens.setdefault(system, []).append(float(tokens))
        results.items[system] = results.items.get(system, 0) + int(n)
    inputs = con.execute(
        "SELECT experiment, input_id, reference, meta FROM inputs "
        "WHERE task = ? AND split = 'eval' AND list_contains(?, experiment)",
        [task, list(seeds)],
    ).fetchall()
    by_seed: dict[str, list[tuple[str, dict]]] = {}
    options: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for name, input_id, reference, meta in inputs:
        parsed = json.loads(meta)
        by_seed.setdefault(name, []).append((reference, parsed))
        if "options" in parsed:
            options[(name, input_id)] = (final_answer(reference), [_option(parsed, o) for o in parsed["options"]])
    results.constant = [constant_rate(items) for _, items in sorted(by_seed.items())]
    if options:
        answers = con.execute(
            "SELECT experiment, system, input_id, answer FROM generations "
            "WHERE method = ? AND task = ? AND split = 'eval' AND list_contains(?, experiment)",
            [METHOD, task, list(seeds)],
        ).fetchall()
        for name, system, input_id, answer in answers:
            if (name, input_id) in options:
                correct, offered = options[(name, input_id)]
                kind = answer_kind(answer or "", correct, offered)
                results.answers.setdefault(system, Counter())[kind] += 1
    return results


def _option(meta: dict, concept: str) -> str:
    return final_answer(f"{meta['entity']} is a {concept}.")


def answer_kind(answer: str, correct: str, offered: Sequence[str]) -> str:
    """Where a ProsQA answer went: the correct option, the other option, or elsewhere."""
    if answer == correct:
        return ANSWER_KINDS[0]
    return ANSWER_KINDS[1] if answer in offered else ANSWER_KINDS[2]


def constant_rate(items: Sequence[tuple[str, dict]]) -> float:
    """% of the eval split a constant answer gets right: for ProsQA the better of 'always the first
    option' and 'always the second', else the most common reference (ProntoQA's True/False)."""
    if not items:
        return 0.0
    if all("options" in meta for _, meta in items):
        first = sum(final_answer(ref) == _option(meta, meta["options"][0]) for ref, meta in items)
        return 100 * max(first, len(items) - first) / len(items)
    counts = Counter(final_answer(ref) for ref, _ in items)
    return 100 * counts.most_common(1)[0][1] / len(items)


def coconut_block(results: CoconutResults) -> str:
    experiment, spec = results.source.experiment, results.source.experiment.coconut
    assert spec is not None
    task = spec.task
    model = (
        f"a Llama from scratch (hidden {spec.scratch.hidden_size}, {spec.scratch.layers} layers)"
        if spec.model == "scratch"
        else f"the base model `{experiment.model.source}`"
    )
    lines = [
        f"### {experiment.name} (`{display_path(results.source.path)}`)",
        "",
        f"{task.kind}: {task.train_size} train / {task.eval_size} eval items per seed; {model}; "
        f"c = {spec.thoughts_per_step}, stages 0–{spec.max_stage} of {spec.training.epochs_per_stage:g} epochs "
        f"(inference with {spec.n_thoughts} thoughts), each baseline {spec.baseline_epochs:g} epochs; greedy "
        f"decoding; seeds {', '.join(str(s) for s in results.seeds_found)}. Tokens per item are the generated "
        "tokens (with `<eos>`) plus the continuous thoughts or pause tokens. The constant-answer rate is what "
        + (
            "always naming the first (or always the second) option offered scores"
            if task.kind == "prosqa"
            else "always giving the more common answer scores"
        )
        + f"; the paper's figures are its Table 1 ({PAPER_MODEL}, mean ± sd over its runs).",
        "",
    ]
    header = ["system", "accuracy", "n", "constant answer", "tokens / item"]
    if results.answers:
        header.append("answers: " + " / ".join(ANSWER_KINDS))
    header += [f"paper ({PAPER_MODEL}): accuracy", "paper: tokens / item"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    constant = f"{statistics.fmean(results.constant):.1f}%" if results.constant else "—"
    for system, label in SYSTEMS.items():
        if system not in results.accuracy:
            continue
        accuracies = results.accuracy[system]
        cells = [
            label,
            mean_sd(accuracies),
            f"{results.items[system] // len(accuracies)} × {len(accuracies)}",
            constant,
            f"{statistics.fmean(results.tokens[system]):.1f}",
        ]
        if results.answers:
            counts = results.answers.get(system, Counter())
            total = max(sum(counts.values()), 1)
            cells.append(" / ".join(f"{100 * counts[k] / total:.0f}%" for k in ANSWER_KINDS))
        paper = PAPER_TABLE_1.get((task.kind, system))
        cells += [f"{paper[0]:.1f} ± {paper[1]:.1f}%", f"{paper[2]:.1f}"] if paper else ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
