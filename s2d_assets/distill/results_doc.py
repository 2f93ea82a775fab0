"""The results document (``docs/results.md``), regenerated from the warehouse by ``s2d report``.

Every number comes from the warehouse's rows: the eval split's references (``inputs``), each
system's answers and token counts (``generations``, scored here per item with the task's own
``is_correct``), and for full runs the evaluation rows (``evaluations``: training examples, an
untrained distilled row, ``evaluation_groups``). The experiment files say which rows belong
together: an experiment with ``seeds`` has one replicate per seed (``distill/replicates.py``).

- Full experiments (with evaluation rows): per task, method and system the accuracy as mean ±
  sample standard deviation over the seeds, n (items per seed × seeds), mean generated tokens,
  the majority-class rate of the eval split beside it, and the system's answer distribution;
  then the paired differences (System 2 − System 1, distilled − System 1, distilled − System 2)
  over the pooled items with their standard errors.
- Sweeps (eval generations only, ``distill/sweep.py``): per setting and method System 1 and
  System 2 accuracy with binomial standard errors over the pooled items, the paired gap and
  whether it exceeds two standard errors.
- Against the paper: each row beside the figure the paper reports for the same cell, where one
  is cited in this repository; otherwise the paper's table is named, never a number guessed.

The document is made of marked blocks (``<!-- s2d report: begin ID -->`` … ``end ID``). A
regeneration replaces the blocks and keeps every line outside them (measured timings, notes),
so hand-written text lives between blocks and never holds a number the warehouse owns.
No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from s2d_assets.config.experiment import PROJECT_ROOT, Experiment, load_experiment
from s2d_assets.core.errors import UserError
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.tasks import EVAL, build_task

SYSTEMS = ("system1", "system2", "system2_sc", "distilled")
SYSTEM_LABEL = {
    "system1": "System 1",
    "system2": "System 2",
    "system2_sc": "System 2 + self-consistency",
    "distilled": "distilled System 1",
}
SYSTEM1_BASELINE = "system1"  # method name of the System 1 baseline's generations
UNPARSED = "(unparsed)"
BEGIN = "<!-- s2d report: begin {} -->"
END = "<!-- s2d report: end {} -->"
LOCKED_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "dagster", "duckdb", "polars")

# The paper's figures (Yu et al. 2024, arXiv 2407.06023, Llama-2-70B-chat), only where the paper's own
# text is cited here; every other cell names the table to look at. Keys: (task kind, method kind, system).
PAPER_MODEL = "Llama-2-70B-chat"
PAPER_FIGURES: dict[tuple[str, str, str], str] = {
    ("last_letter", "rar_2step", "distilled"): "98.0% (Table 1: RaR 2-step distilled)",
}
PAPER_TABLES: dict[tuple[str, str], str] = {
    ("last_letter", "rar"): "see paper Table 1 (Rephrase and Respond)",
    ("coin_flip", "rar"): "see paper Table 1 (Rephrase and Respond)",
    ("last_letter", "system1"): "see paper Table 1 (Rephrase and Respond)",
    ("coin_flip", "system1"): "see paper Table 1 (Rephrase and Respond)",
    ("factual_qa", "s2a"): "see the paper's S2A results (TriviaQA with injected opinions, biased and unbiased)",
    ("sycophancy", "s2a"): "not in the paper (its S2A setting is factual QA with injected opinions)",
    ("pairwise_judging", "bsm"): "see the paper's BSM results (OASST2 and MT-bench judging)",
    ("gsm8k", "cot"): "see the paper's GSM8K results: CoT could not be distilled well",
}


# -- what the warehouse holds for one experiment file ---------------------------------------------------
@dataclass(frozen=True)
class Source:
    path: Path
    experiment: Experiment

    @property
    def replicates(self) -> list[Experiment]:
        return self.experiment.replicates()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.replicates]


@dataclass
class Cell:
    """One (task, method, system) over the seeds: per-seed item scores, pooled answers and tokens."""

    per_seed: dict[int, list[bool]] = field(default_factory=dict)
    tokens: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    by_item: dict[tuple[int, str], bool] = field(default_factory=dict)

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    @property
    def items(self) -> int:
        return sum(len(v) for v in self.per_seed.values())

    def accuracies(self) -> list[float]:
        return [100 * sum(v) / len(v) for v in self.per_seed.values() if v]

    def pooled(self) -> float:
        return 100 * sum(sum(v) for v in self.per_seed.values()) / max(self.items, 1)


@dataclass
class TaskMethod:
    """Everything the document shows for one (task, method) of an experiment."""

    task: str
    task_kind: str
    method: str
    method_kind: str
    setting: str
    cells: dict[str, Cell] = field(default_factory=dict)
    majority: dict[int, float] = field(default_factory=dict)
    train_examples: list[int] = field(default_factory=list)
    untrained_seeds: list[int] = field(default_factory=list)
    groups: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (system, group) -> accuracy per seed
    group_n: dict[str, int] = field(default_factory=dict)


@dataclass
class ExperimentResults:
    source: Source
    full: bool  # evaluation rows (a distillation run) or eval generations only (a sweep)
    rows: list[TaskMethod]
    seeds_found: list[int]


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def describe_task(spec: Any) -> str:
    """A task spec in a few words: its kind, difficulty and sizes."""
    data = spec.model_dump(mode="json")
    parts = [data["kind"]]
    for key, label in (
        ("n_people", "people"),
        ("n_words", "words"),
        ("source", "source"),
        ("variant", "variant"),
        ("opinion", "opinion"),
        ("answer_type", "answers"),
    ):
        if key in data and data[key] is not None:
            parts.append(f"{label} {data[key]}")
    if data.get("irrelevant_sentence"):
        parts.append("irrelevant sentence")
    if data.get("perturbations"):
        parts.append("perturbations " + "+".join(data["perturbations"]))
    parts.append(f"{data['train_size']} train / {data['eval_size']} eval")
    return ", ".join(parts)


def collect(con: duckdb.DuckDBPyConnection, source: Source) -> ExperimentResults | None:
    """The experiment's rows, scored per item; None when the warehouse has no eval answers for it."""
    names = source.names
    seed_of = {r.name: r.seed for r in source.replicates}
    spec_of = {r.name: r for r in source.replicates}
    found = con.execute(
        "SELECT DISTINCT experiment FROM generations WHERE list_contains(?, experiment) AND split = ?", [names, EVAL]
    ).fetchall()
    if not found:
        return None
    present = [n for n in names if (n,) in found]
    full = _has_table(con, "evaluations") and bool(
        con.execute("SELECT count(*) FROM evaluations WHERE list_contains(?, experiment)", [present]).fetchone()[0]
    )
    references = con.execute(
        "SELECT experiment, task, input_id, reference FROM inputs WHERE list_contains(?, experiment) AND split = ?",
        [present, EVAL],
    ).fetchall()
    refs: dict[tuple[str, str], dict[str, str]] = {}
    for experiment, task, input_id, reference in references:
        refs.setdefault((experiment, task), {})[input_id] = reference or ""
    generations = con.execute(
        "SELECT experiment, task, method, system, input_id, answer, completion_tokens FROM generations "
        "WHERE list_contains(?, experiment) AND split = ? AND variant_id = 0 AND sample_idx = 0 "
        "ORDER BY experiment, task, method, system, input_id",
        [present, EVAL],
    ).fetchall()
    experiment = source.experiment
    rows: dict[tuple[str, str], TaskMethod] = {}
    for task_name, spec in experiment.tasks.items():
        for method_name, method_spec in experiment.methods.items():
            rows[(task_name, method_name)] = TaskMethod(
                task_name, spec.kind, method_name, method_spec.kind, describe_task(spec)
            )
    tasks = {(name, t): build_task(spec_of[name].tasks[t]) for name in present for t in experiment.tasks}
    system1: dict[tuple[str, str], list[tuple[str, str | None, int]]] = {}
    for name, task, method, system, input_id, answer, tokens in generations:
        if task not in experiment.tasks or (name, task) not in refs or input_id not in refs[(name, task)]:
            continue
        if system == "system1" and method == SYSTEM1_BASELINE:
            system1.setdefault((name, task), []).append((input_id, answer, tokens or 0))
            continue
        if (task, method) not in rows:
            continue
        _score(
            rows[(task, method)],
            system,
            seed_of[name],
            tasks[(name, task)],
            refs[(name, task)],
            input_id,
            answer,
            tokens,
        )
    for (name, task), answers in system1.items():  # the one baseline is every method's System 1 row
        for method in experiment.methods:
            for input_id, answer, tokens in answers:
                _score(
                    rows[(task, method)],
                    "system1",
                    seed_of[name],
                    tasks[(name, task)],
                    refs[(name, task)],
                    input_id,
                    answer,
                    tokens,
                )
    for (name, task), by_id in refs.items():
        rate = majority_rate(tasks[(name, task)], list(by_id.values()))
        for method in experiment.methods:
            if rate is not None:
                rows[(task, method)].majority[seed_of[name]] = rate
    if full:
        _add_evaluation_rows(con, present, seed_of, rows)
    kept = [r for r in rows.values() if r.cells]
    return ExperimentResults(source, full, kept, sorted(seed_of[n] for n in present))


def _score(
    row: TaskMethod,
    system: str,
    seed: int,
    task: Any,
    refs: dict[str, str],
    input_id: str,
    answer: str | None,
    tokens: int | None,
) -> None:
    cell = row.cells.setdefault(system, Cell())
    correct = bool(task.is_correct(answer, refs[input_id]))
    cell.per_seed.setdefault(seed, []).append(correct)
    cell.by_item[(seed, input_id)] = correct
    cell.tokens.append(float(tokens or 0))
    cell.answers[UNPARSED if answer is None else str(answer)] += 1


def majority_rate(task: Any, references: Sequence[str]) -> float | None:
    """Accuracy (%) of always giving the split's most common reference; None without labels."""
    labelled = [r for r in references if r]
    if not labelled:
        return None
    answer, _ = Counter(labelled).most_common(1)[0]
    return 100 * sum(bool(task.is_correct(answer, r)) for r in labelled) / len(references)


def _add_evaluation_rows(
    con: duckdb.DuckDBPyConnection, names: list[str], seed_of: dict[str, int], rows: dict[tuple[str, str], TaskMethod]
) -> None:
    columns = _columns(con, "evaluations")
    status = "status" if "status" in columns else "NULL"
    evaluations = con.execute(
        f"SELECT experiment, task, method, system, train_examples, {status} FROM evaluations "
        "WHERE list_contains(?, experiment) AND system = 'distilled'",
        [names],
    ).fetchall()
    for name, task, method, _, train_examples, row_status in evaluations:
        row = rows.get((task, method))
        if row is None:
            continue
        if train_examples is not None:
            row.train_examples.append(int(train_examples))
        if row_status == "untrained" or train_examples == 0:
            row.untrained_seeds.append(seed_of[name])
    if not _has_table(con, "evaluation_groups"):
        return
    groups = con.execute(
        "SELECT experiment, task, method, system, group_name, n, accuracy FROM evaluation_groups "
        "WHERE list_contains(?, experiment) ORDER BY ALL",
        [names],
    ).fetchall()
    for _, task, method, system, group, n, accuracy in groups:
        row = rows.get((task, method))
        if row is None or accuracy is None:
            continue
        row.groups.setdefault((system, group), []).append(100 * accuracy)
        row.group_n[group] = int(n)


# -- numbers as text -------------------------------------------------------------------------------------
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


def paired_gap(a: Cell, b: Cell) -> tuple[float, float, int] | None:
    """Mean of (a correct − b correct) over the items both answered, its standard error, and n."""
    shared = sorted(set(a.by_item) & set(b.by_item))
    if len(shared) < 2:
        return None
    diffs = [int(a.by_item[k]) - int(b.by_item[k]) for k in shared]
    return 100 * statistics.fmean(diffs), 100 * statistics.stdev(diffs) / math.sqrt(len(diffs)), len(diffs)


def gap_text(gap: tuple[float, float, int] | None) -> str:
    if gap is None:
        return "—"
    mean, se, _ = gap
    verdict = " **(> 2 se)**" if se > 0 and abs(mean) > 2 * se else ""
    return f"{mean:+.1f} ± {se:.1f}{verdict}"


def n_text(cell: Cell) -> str:
    sizes = sorted({len(v) for v in cell.per_seed.values()})
    return f"{sizes[0]} × {cell.seeds}" if len(sizes) == 1 else f"{cell.items} ({cell.seeds} seeds)"


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


def _short(answer: str) -> str:
    text = answer.replace("|", "/").replace("\n", " ")
    return f"`{text[:20]}`" if answer != UNPARSED else UNPARSED


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines


# -- the blocks ------------------------------------------------------------------------------------------
def header_block(warehouse: Path, sources: Sequence[ExperimentResults], written: tuple[Any, Any] | None) -> str:
    lines = [
        f"Generated by `s2d report` on {dt.date.today().isoformat()} from the warehouse `{_display(warehouse)}`"
        + (f" (rows written {written[0]:%Y-%m-%d %H:%M} – {written[1]:%Y-%m-%d %H:%M} UTC)." if written else "."),
        "",
        f"- Machine: {machine_description()}.",
        f"- Versions (`requirements/cpu.lock`): {locked_versions()}; Python {platform.python_version()}.",
        "- Experiments: "
        + "; ".join(f"`{_display(r.source.path)}` (seeds {', '.join(str(s) for s in r.seeds_found)})" for r in sources)
        + ".",
        "- Accuracy is the mean ± sample standard deviation over the seeds (each seed draws its own train/eval "
        "split, samples and training order); n is eval items per seed × seeds. The majority-class rate is "
        "what always giving the eval split's most common reference scores; a system near it with one dominant "
        "answer has learnt the label prior, not the task. Differences are paired over the same items, with "
        "their standard error (se); **(> 2 se)** marks a difference beyond two standard errors.",
    ]
    return "\n".join(lines)


def experiment_block(results: ExperimentResults) -> str:
    experiment = results.source.experiment
    lines = [
        f"### {experiment.name} (`{_display(results.source.path)}`)",
        "",
        f"Model `{experiment.model.source}`; N = {experiment.n_samples} samples at temperature "
        f"{experiment.sampling.temperature}; curation `{experiment.curation.filter}`"
        + (f" (min_agreement {experiment.curation.min_agreement})" if experiment.curation.min_agreement else "")
        + f"; training {experiment.training.mode}, {experiment.training.epochs:g} epochs; "
        f"seeds {', '.join(str(s) for s in results.seeds_found)}.",
        "",
    ]
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
                            "",
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
                    n_text(cell),
                    _majority(row),
                    f"{statistics.fmean(cell.tokens):.1f}",
                    distribution_text(cell.answers),
                    _train(row) if system == "distilled" else "",
                ]
            )
    lines += _table(
        ["task", "method", "system", "accuracy", "n", "majority class", "tokens / item", "answers", "train examples"],
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
        gaps.append(
            [
                row.task,
                row.method,
                gap_text(paired_gap(s2, s1)),
                gap_text(paired_gap(distilled, s1)) if distilled else "—",
                gap_text(paired_gap(distilled, s2)) if distilled else "—",
                tokens,
            ]
        )
    if gaps:
        lines += ["", "Paired differences in accuracy points (pooled over the seeds' items):", ""]
        lines += _table(
            [
                "task",
                "method",
                "System 2 − System 1",
                "distilled − System 1",
                "distilled − System 2",
                "distilled tokens / System 2 tokens",
            ],
            gaps,
        )
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
        lines += _table(["task", "method", "system", "group", "accuracy", "n"], group_rows)
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
                        f"{row.task}: {row.setting}",
                        label,
                        f"{s2.items} ({s2.seeds} seeds)",
                        f"{s1.pooled():.1f} ± {binomial_se(s1.pooled(), s1.items):.1f}",
                        f"{s2.pooled():.1f} ± {binomial_se(s2.pooled(), s2.items):.1f}",
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
        "binomial standard error over the pooled items of all seeds; the gap is paired over the same items.",
        "",
    ]
    lines += _table(
        [
            "setting",
            "method",
            "n",
            "System 1 %",
            "System 2 %",
            "System 2 − System 1",
            "tokens S1 → S2",
            "majority class %",
            "System 2 answers",
        ],
        body,
    )
    return "\n".join(lines)


def paper_block(results: Sequence[ExperimentResults]) -> str:
    body = []
    for result in results:
        for row in result.rows:
            for system in SYSTEMS:
                cell = row.cells.get(system)
                if cell is None:
                    continue
                body.append(
                    [
                        f"{result.source.experiment.name}",
                        row.task,
                        row.method,
                        SYSTEM_LABEL[system],
                        mean_sd(cell.accuracies()),
                        paper_cell(row.task_kind, row.method_kind, system),
                    ]
                )
    lines = [
        f"The paper distils {PAPER_MODEL}; this repository's default model is SmolLM2-135M-Instruct, about 500 "
        "times smaller, so the comparison is of direction (does System 2 beat System 1, does distillation keep "
        "it), not of level. A figure appears only where this repository cites the paper's text; otherwise the "
        "table to compare with is named.",
        "",
    ]
    lines += _table(["experiment", "task", "method", "system", "this run", f"paper ({PAPER_MODEL})"], body)
    return "\n".join(lines)


def paper_cell(task_kind: str, method_kind: str, system: str) -> str:
    figure = PAPER_FIGURES.get((task_kind, method_kind, system))
    if figure:
        return figure
    family = re.sub(r"_.*", "", method_kind) if system != "system1" else "system1"
    for key in ((task_kind, family), (task_kind, re.sub(r"_.*", "", method_kind))):
        if key in PAPER_TABLES:
            return PAPER_TABLES[key]
    return "no corresponding cell in the paper"


def _majority(row: TaskMethod) -> str:
    return "—" if not row.majority else f"{statistics.fmean(row.majority.values()):.1f}%"


def _train(row: TaskMethod) -> str:
    if not row.train_examples:
        return ""
    values = row.train_examples
    return str(values[0]) if len(set(values)) == 1 else f"{statistics.fmean(values):.1f} ({min(values)}–{max(values)})"


# -- the machine and versions ------------------------------------------------------------------------------
def machine_description() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1024 / 1024:.0f} GB RAM"
    except (OSError, IndexError, ValueError):
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores{memory}, flags {' '.join(shown) or 'none of avx2/avx512'}, no GPU used"


def locked_versions(lock: Path = PROJECT_ROOT / "requirements" / "cpu.lock") -> str:
    try:
        text = lock.read_text()
    except OSError:
        return "no lock file"
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.MULTILINE))
    pins = {k.lower(): v for k, v in pins.items()}
    return ", ".join(f"{name} {pins[name]}" for name in LOCKED_PACKAGES if name in pins)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


# -- the document ------------------------------------------------------------------------------------------
def default_sources(root: Path = PROJECT_ROOT / "experiments") -> list[Path]:
    return sorted(root.glob("*.yaml")) + sorted((root / "sweeps").glob("*.yaml"))


def build_blocks(warehouse: Path, experiment_files: Sequence[Path]) -> list[tuple[str, str]]:
    """The document's blocks, in order: header, one per full experiment, the sweep table, the paper."""
    snapshot = Warehouse(warehouse).read_snapshot()
    sources = [Source(path, load_experiment(path)) for path in experiment_files]
    with duckdb.connect(str(snapshot), read_only=True) as con:
        results = [r for r in (collect(con, s) for s in sources if s.experiment.tasks) if r is not None]
        names = [n for r in results for n in r.source.names]
        written = con.execute(
            "SELECT min(c.created_at), max(c.created_at) FROM generations g JOIN llm_cache c USING (cache_key) "
            "WHERE list_contains(?, g.experiment)",
            [names],
        ).fetchone()
    if not results:
        raise UserError(
            f"{warehouse}: no evaluation answers for any of {[str(p) for p in experiment_files]}; run them first"
        )
    full = [r for r in results if r.full]
    sweeps = [r for r in results if not r.full]
    blocks = [("header", header_block(warehouse, results, written if written and written[0] else None))]
    blocks += [(f"experiment:{r.source.experiment.name}", experiment_block(r)) for r in full]
    if sweeps:
        blocks.append(("sweep", sweep_block(sweeps)))
    blocks.append(("paper", paper_block(full or results)))
    return blocks


def render(blocks: Sequence[tuple[str, str]], existing: str | None = None) -> str:
    """``existing`` with each block replaced in place (new blocks appended); a new document without it."""
    if existing is None:
        titles = {"header": None, "sweep": "## Where System 2 beats System 1: sweeps", "paper": "## Against the paper"}
        parts = ["# Results", ""]
        experiments_started = False
        for block_id, text in blocks:
            if block_id.startswith("experiment:") and not experiments_started:
                parts += ["## Experiments", ""]
                experiments_started = True
            title = titles.get(block_id)
            if title:
                parts += [title, ""]
            parts += [BEGIN.format(block_id), text, END.format(block_id), ""]
        return "\n".join(parts)
    document = existing
    for block_id, text in blocks:
        pattern = re.compile(re.escape(BEGIN.format(block_id)) + r".*?" + re.escape(END.format(block_id)), re.DOTALL)
        replacement = f"{BEGIN.format(block_id)}\n{text}\n{END.format(block_id)}"
        found = pattern.search(document)
        if found:
            document = document[: found.start()] + replacement + document[found.end() :]
        else:
            document = document.rstrip("\n") + f"\n\n{replacement}\n"
    return document


def write_report(warehouse: Path, experiment_files: Sequence[Path], output: Path) -> str:
    blocks = build_blocks(warehouse, experiment_files)
    existing = output.read_text(encoding="utf-8") if output.exists() else None
    if existing is not None and BEGIN.format("header") not in existing:
        existing = None  # a hand-written document from before: replaced whole
    text = render(blocks, existing)
    output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return text


# -- the command line ----------------------------------------------------------------------------------------
DEFAULT_OUTPUT = PROJECT_ROOT / "docs" / "results.md"


def cmd_report(args: Any) -> int:
    from s2d_assets.core.paths import state_paths

    files = [Path(p) for p in args.experiment] or default_sources()
    warehouse = args.warehouse or state_paths().warehouse
    if args.stdout:
        print(render(build_blocks(warehouse, files)))
        return 0
    write_report(warehouse, files, args.output)
    print(f"Wrote {args.output} from {warehouse}.")
    return 0


def cmd_sweep(args: Any) -> int:
    from s2d_assets.core.paths import state_paths
    from s2d_assets.distill.sweep import run_sweep

    for path in args.experiments:
        run_sweep(load_experiment(path), state_paths(), self_consistency=args.self_consistency)
    return 0


def add_results_commands(commands: Any) -> None:
    """Register `s2d report` and `s2d sweep` on the CLI's sub-command parsers."""
    report = commands.add_parser(
        "report",
        help="regenerate docs/results.md from the warehouse (mean ± sd over seeds, baselines, the paper)",
        description="Regenerate the results document from the warehouse. Blocks between "
        "'<!-- s2d report: begin ID -->' and 'end ID' are replaced; text outside them is kept.",
    )
    report.add_argument(
        "-e",
        "--experiment",
        action="append",
        default=[],
        help="an experiment file to report (repeatable; default: experiments/*.yaml and experiments/sweeps/*.yaml "
        "that have rows in the warehouse)",
    )
    report.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="the document (default: %(default)s)")
    report.add_argument("--warehouse", type=Path, default=None, help="DuckDB file (default: the state folder's)")
    report.add_argument("--stdout", action="store_true", help="print a fresh document instead of writing the file")
    report.set_defaults(func=cmd_report)
    sweep = commands.add_parser(
        "sweep",
        help="generation-only sweep: System 1 and each System 2 method on the eval split, for every seed",
        description="Inputs, the System 1 baseline and each method's System 2 answers on the eval split, for "
        "every seed and task of the given experiment files; no train-split samples, no training. "
        "`s2d report` then shows the sweep table.",
    )
    sweep.add_argument("experiments", nargs="+", type=Path, help="sweep experiment files (experiments/sweeps/*.yaml)")
    sweep.add_argument(
        "--self-consistency",
        action="store_true",
        help="also each method's plurality answer over the experiment's n_samples sampled chains",
    )
    sweep.set_defaults(func=cmd_sweep)
