"""The results document's blocks as text: per experiment, the sweeps, and each row beside the paper.

Numbers are formatted here from ``results_data`` cells (mean ± sd over seeds, standard errors,
paired gaps, answer distributions). No Dagster here.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from s2d_assets.config.training import TeachSpec
from s2d_assets.core.paths import PROJECT_ROOT
from s2d_assets.distill.reading import READ_HEADER, read_cells
from s2d_assets.report.results_data import SYSTEMS, UNPARSED, Cell, ExperimentResults, TaskMethod, describe_task
from s2d_assets.report.results_pools import POOL_HEADER, POOL_NOTE, pool_rows

SYSTEM_LABEL = {
    "system1": "System 1",
    "system2": "System 2",
    "system2_sc": "System 2 + self-consistency",
    "distilled": "distilled System 1",
}


# The paper's figures (Yu et al. 2024, arXiv 2407.06023, Llama-2-70B-chat), only where the paper's own
# text is cited here; every other cell names the table to look at. Keys: (task kind, method kind, system).
def mean_sd(values: Sequence[float]) -> str:
    """``m ± sd`` (sample standard deviation) over the seeds; one value alone has no spread."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}% (1 seed)"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}%"


def binomial_se(pct: float, n: int) -> float:
    p = pct / 100
    return 100 * math.sqrt(p * (1 - p) / n) if n else float("nan")


@dataclass(frozen=True)
class Gap:
    """A paired difference in accuracy points: its mean over the pooled items, the standard error over
    those items, n, and the difference within each seed."""

    mean: float
    item_se: float
    n: int
    per_seed: tuple[float, ...]

    @property
    def seed_se(self) -> float:
        k = len(self.per_seed)
        return statistics.stdev(self.per_seed) / math.sqrt(k) if k > 1 else 0.0

    @property
    def se(self) -> float:
        """The larger of the two: items vary within a seed, and a trained system also between seeds
        (one seed's training can learn the task while another's collapses to one answer)."""
        return max(self.item_se, self.seed_se)


def paired_gap(a: Cell, b: Cell) -> Gap | None:
    """(a correct − b correct) over the items both answered, pooled over the seeds and per seed."""
    shared = sorted(set(a.by_item) & set(b.by_item))
    if len(shared) < 2:
        return None
    diffs = [int(a.by_item[k]) - int(b.by_item[k]) for k in shared]
    by_seed: dict[int, list[int]] = {}
    for (seed, _), diff in zip(shared, diffs, strict=True):
        by_seed.setdefault(seed, []).append(diff)
    return Gap(
        mean=100 * statistics.fmean(diffs),
        item_se=100 * statistics.stdev(diffs) / math.sqrt(len(diffs)),
        n=len(diffs),
        per_seed=tuple(100 * statistics.fmean(v) for _, v in sorted(by_seed.items())),
    )


def gap_text(gap: Gap | None, per_seed: bool = False) -> str:
    if gap is None:
        return "—"
    # se 0 with a non-zero mean: every item moved the same way (no spread), which is beyond any 2 se.
    verdict = " **(> 2 se)**" if abs(gap.mean) > 2 * gap.se else ""
    seeds = ""
    if per_seed and len(gap.per_seed) > 1:
        seeds = " (seeds: " + ", ".join(f"{value:+.1f}" for value in gap.per_seed) + ")"
    return f"{gap.mean:+.1f} ± {gap.se:.1f}{verdict}{seeds}"


def kept_text(gain: Gap | None, kept: Gap | None) -> str:
    """(distilled − System 1) / (System 2 − System 1): the share of System 2's gain the distilled System 1 keeps.

    Only for a gain beyond two standard errors; a ratio of noise would be meaningless.
    """
    if gain is None or kept is None or gain.mean <= 2 * gain.se or gain.mean <= 0:
        return "—"
    return f"{100 * kept.mean / gain.mean:.0f}%"


def taught_text(teach: TeachSpec) -> str:
    """The line that labels a taught System 2's results as not the paper's prompted setting."""
    tasks = "; ".join(
        f"`{name}`: {describe_task(task).rsplit(', ', 1)[0]}, {task.train_size} inputs"
        for name, task in teach.tasks.items()
    )
    training = teach.training
    return (
        "**A taught System 2, not the paper's prompted setting.** Before the pipeline runs, the model is "
        f"fine-tuned ({training.mode}, {training.epochs:g} epochs, learning rate {training.learning_rate:g}) on "
        f"programmatic step-by-step traces of other inputs (`model.teach`: {tasks}), written as `{teach.method}`'s "
        "stages; the experiment's own inputs are new and unlabelled, and System 1, System 2 and the distillation "
        "all start from that taught model."
    )


def seeds_text(k: int) -> str:
    return f"{k} seed" if k == 1 else f"{k} seeds"


def n_text(cell: Cell) -> str:
    sizes = sorted({len(v) for v in cell.per_seed.values()})
    return f"{sizes[0]} × {cell.seeds}" if len(sizes) == 1 else f"{cell.items} ({seeds_text(cell.seeds)})"


def distribution_text(answers: Counter[str], top: int = 3) -> str:
    total = sum(answers.values())
    if not total:
        return "—"
    ranked = sorted(answers.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{_short(a)} {100 * c / total:.0f}%" for a, c in ranked[:top]]
    rest = total - sum(c for _, c in ranked[:top])
    if rest:
        parts.append(f"other {100 * rest / total:.0f}%")
    return ", ".join(parts)


def top_per_seed(cell: Cell) -> str:
    """Each seed's most common answer and its share, so one seed's collapse is not hidden by the pooling."""
    if len(cell.seed_answers) < 2:
        return ""
    tops = []
    for _, answers in sorted(cell.seed_answers.items()):
        answer, count = sorted(answers.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        tops.append(f"{_short(answer)} {100 * count / sum(answers.values()):.0f}%")
    return "; top answer per seed: " + ", ".join(tops)


def _short(answer: str) -> str:
    text = answer.replace("|", "/").replace("\n", " ")
    return f"`{text[:20]}`" if answer != UNPARSED else UNPARSED


def table_lines(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines


TAIL = ("answers", "train examples")


# -- the blocks ------------------------------------------------------------------------------------------
def experiment_block(results: ExperimentResults) -> str:
    experiment = results.source.experiment
    lines = [
        f"### {experiment.name} (`{display_path(results.source.path)}`)",
        "",
        f"Model `{experiment.model.source}`; N = {experiment.n_samples} samples at temperature "
        f"{experiment.sampling.temperature}; curation `{experiment.curation.filter}`"
        + (f" (min_agreement {experiment.curation.min_agreement})" if experiment.curation.min_agreement else "")
        + f"; training {experiment.training.mode}, {experiment.training.epochs:g} epochs; "
        f"seeds {', '.join(str(s) for s in results.seeds_found)}.",
        "",
    ]
    if experiment.model.teach is not None:
        lines += [taught_text(experiment.model.teach), ""]
    body = []
    for row in results.rows:
        for system in SYSTEMS:
            cell = row.cells.get(system)
            if system == "distilled" and (cell is None or row.untrained_seeds):
                if row.untrained_seeds:
                    body.append(
                        [
                            row.task,
                            row.method,
                            SYSTEM_LABEL[system],
                            f"untrained (empty pool, seeds {', '.join(map(str, sorted(row.untrained_seeds)))})",
                            *[""] * 5,
                            _majority(row),
                            "",
                            "",
                            _train(row),
                        ]
                    )
                continue
            if cell is None:
                continue
            body.append(
                [
                    row.task,
                    row.method,
                    SYSTEM_LABEL[system],
                    mean_sd(cell.accuracies()),
                    *read_cells(cell.reading),
                    n_text(cell),
                    _majority(row),
                    f"{statistics.fmean(cell.tokens):.1f}",
                    distribution_text(cell.answers) + top_per_seed(cell),
                    _train(row) if system == "distilled" else "",
                ]
            )
    lines += table_lines(
        ["task", "method", "system", "accuracy", *READ_HEADER, "n", "majority class", "tokens / item", *TAIL],
        body,
    )
    gaps = []
    for row in results.rows:
        s1, s2, distilled = (row.cells.get(s) for s in ("system1", "system2", "distilled"))
        if s1 is None or s2 is None:
            continue
        tokens = ""
        if distilled is not None and distilled.tokens and s2.tokens:
            tokens = f"{statistics.fmean(distilled.tokens) / max(statistics.fmean(s2.tokens), 1e-9):.2f}"
        gain, kept = paired_gap(s2, s1), paired_gap(distilled, s1) if distilled else None
        gaps.append(
            [
                row.task,
                row.method,
                gap_text(gain, per_seed=True),
                gap_text(kept, per_seed=True),
                gap_text(paired_gap(distilled, s2), per_seed=True) if distilled else "—",
                kept_text(gain, kept),
                tokens,
            ]
        )
    if gaps:
        lines += [
            "",
            "Paired differences in accuracy points over the same items, pooled over the seeds, ± the larger of "
            "the standard error over the items and the one over the seeds' differences (given per seed):",
            "",
        ]
        lines += table_lines(
            [
                "task",
                "method",
                "System 2 − System 1",
                "distilled − System 1",
                "distilled − System 2",
                "share of the gain kept",
                "distilled tokens / System 2 tokens",
            ],
            gaps,
        )
    pools = pool_rows(results)
    if pools:
        lines += ["", POOL_NOTE, "", *table_lines(POOL_HEADER, pools)]
    group_rows = [
        [
            row.task,
            row.method,
            SYSTEM_LABEL.get(system, system),
            group,
            mean_sd(values),
            f"{row.group_n[group]} × {len(values)}",
        ]
        for row in results.rows
        for (system, group), values in sorted(
            row.groups.items(), key=lambda kv: (kv[0][1], SYSTEMS.index(kv[0][0]) if kv[0][0] in SYSTEMS else 9)
        )
    ]
    if group_rows:
        lines += ["", "By evaluation group:", ""]
        lines += table_lines(["task", "method", "system", "group", "accuracy", "n"], group_rows)
    return "\n".join(lines)


def sweep_block(sweeps: Sequence[ExperimentResults]) -> str:
    body = []
    for results in sweeps:
        for row in results.rows:
            s1 = row.cells.get("system1")
            majority = statistics.fmean(row.majority.values()) if row.majority else None
            for system, label in (("system2", row.method), ("system2_sc", f"{row.method} + self-consistency")):
                s2 = row.cells.get(system)
                if s1 is None or s2 is None:
                    continue
                if system == "system2_sc":
                    label += f" (N = {results.source.experiment.n_samples})"
                body.append(
                    [
                        results.source.experiment.name,
                        f"{row.task}: {row.setting}",
                        label,
                        f"{s2.items} ({seeds_text(s2.seeds)})",
                        f"{s1.pooled():.1f} ± {binomial_se(s1.pooled(), s1.items):.1f}",
                        f"{s2.pooled():.1f} ± {binomial_se(s2.pooled(), s2.items):.1f}",
                        s2.reading.accuracy_parsed_text(),
                        f"{s1.reading.parsed_text()} → {s2.reading.parsed_text()}",
                        f"{s1.reading.truncated_text()} → {s2.reading.truncated_text()}",
                        gap_text(paired_gap(s2, s1)),
                        f"{statistics.fmean(s1.tokens):.0f} → {statistics.fmean(s2.tokens):.0f}",
                        "—" if majority is None else f"{majority:.1f}",
                        distribution_text(s2.answers, top=2),
                    ]
                )
    lines = [
        "Generation only (`s2d sweep experiments/sweeps/<file>.yaml`): System 1 and "
        "each System 2 method answer the eval split greedily; nothing is distilled. With `--self-consistency` "
        "a method also answers by the plurality of N sampled chains (its tokens are all N chains'). Accuracy ± "
        "binomial standard error over the pooled items of all seeds (an unparsed answer counts as wrong); "
        "on parsed, parsed and truncated are read as the header says. The gap is paired over the same items.",
        "",
    ]
    lines += table_lines(
        [
            "sweep",
            "setting",
            "method",
            "n",
            "System 1 %",
            "System 2 %",
            "System 2 % on parsed",
            "parsed S1 → S2",
            "truncated S1 → S2",
            "System 2 − System 1",
            "tokens S1 → S2",
            "majority class %",
            "System 2 answers",
        ],
        body,
    )
    return "\n".join(lines)


def _majority(row: TaskMethod) -> str:
    return "—" if not row.majority else f"{statistics.fmean(row.majority.values()):.1f}%"


def _train(row: TaskMethod) -> str:
    if not row.train_examples:
        return ""
    values = row.train_examples
    return str(values[0]) if len(set(values)) == 1 else f"{statistics.fmean(values):.1f} ({min(values)}–{max(values)})"


def display_path(path: Path) -> str:
    """A path as the document shows it: relative to the repository, else its file name alone (a document
    never prints where a machine keeps its files)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT.resolve()))
    except ValueError:
        return path.name


# -- the document ------------------------------------------------------------------------------------------
