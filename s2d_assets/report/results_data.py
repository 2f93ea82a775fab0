"""What the warehouse holds for the results document: per experiment file, its replicates' cells.

Each cell is one (task, method, system) over the seeds: the per-item correctness scored with the
task's own ``is_correct``, tokens, what was read of the answers (``distill/reading.py``: parsed,
cut off at the token budget per ``generations.finish_reason``), the eval split's references and the
evaluation rows. Read-only;
no Dagster here. ``results_doc.py`` turns these into text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from s2d_assets.config.experiment import Experiment
from s2d_assets.distill.curate import pool_summary
from s2d_assets.distill.reading import Reading
from s2d_assets.tasks import EVAL, build_task

SYSTEMS = ("system1", "system2", "system2_sc", "distilled")
SYSTEM1_BASELINE = "system1"  # method name of the System 1 baseline's generations
UNPARSED = "(unparsed)"


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
    seed_answers: dict[int, Counter[str]] = field(default_factory=dict)
    reading: Reading = field(default_factory=Reading)  # parsed / truncated over the pooled items

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
    pools: dict[int, dict[str, Any]] = field(default_factory=dict)  # seed -> ``curate.pool_summary``


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
    finish = "finish_reason" if "finish_reason" in _columns(con, "generations") else "NULL"  # older warehouses
    generations = con.execute(
        f"SELECT experiment, task, method, system, input_id, answer, completion_tokens, {finish} FROM generations "
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
    system1: dict[tuple[str, str], list[tuple[str, str | None, int, str | None]]] = {}

    def score(name: str, task: str, method: str, system: str, generation: tuple[Any, ...]) -> None:
        key = (name, task)
        _score(rows[(task, method)], system, seed_of[name], tasks[key], refs[key], *generation)

    for name, task, method, system, *generation in generations:
        input_id = generation[0]
        if task not in experiment.tasks or (name, task) not in refs or input_id not in refs[(name, task)]:
            continue
        if system == "system1" and method == SYSTEM1_BASELINE:
            system1.setdefault((name, task), []).append(tuple(generation))  # type: ignore[arg-type]
            continue
        if (task, method) not in rows:
            continue
        score(name, task, method, system, tuple(generation))
    for (name, task), answers in system1.items():  # the one baseline is every method's System 1 row
        for method in experiment.methods:
            for generation in answers:
                score(name, task, method, "system1", generation)
    for (name, task), by_id in refs.items():
        rate = majority_rate(tasks[(name, task)], list(by_id.values()))
        for method in experiment.methods:
            if rate is not None:
                rows[(task, method)].majority[seed_of[name]] = rate
    if full:
        _add_evaluation_rows(con, present, seed_of, rows)
        _add_pools(con, present, seed_of, rows, tasks)
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
    finish_reason: str | None = None,
) -> None:
    cell = row.cells.setdefault(system, Cell())
    correct = bool(task.is_correct(answer, refs[input_id]))
    cell.reading.add(answer is not None, correct, finish_reason)
    cell.per_seed.setdefault(seed, []).append(correct)
    cell.by_item[(seed, input_id)] = correct
    cell.tokens.append(float(tokens or 0))
    cell.answers[UNPARSED if answer is None else str(answer)] += 1
    cell.seed_answers.setdefault(seed, Counter())[UNPARSED if answer is None else str(answer)] += 1


def majority_rate(task: Any, references: Sequence[str]) -> float | None:
    """Accuracy (%) of always giving the split's most common reference; None without labels."""
    labelled = [r for r in references if r]
    if not labelled:
        return None
    answer, _ = Counter(labelled).most_common(1)[0]
    return 100 * sum(bool(task.is_correct(answer, r)) for r in labelled) / len(references)


def _add_pools(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    seed_of: dict[str, int],
    rows: dict[tuple[str, str], TaskMethod],
    tasks: dict[tuple[str, str], Any],
) -> None:
    """Each seed's distillation pool summarised as its stage's metadata does (``curate.pool_summary``)."""
    if not _has_table(con, "curated_pool"):
        return
    pool = con.execute(
        "SELECT c.experiment, c.task, c.method, c.input_id, c.answer, c.votes::VARCHAR, c.kept, i.reference "
        "FROM curated_pool c LEFT JOIN inputs i USING (experiment, task, input_id) "
        "WHERE list_contains(?, c.experiment) ORDER BY ALL",
        [names],
    ).fetchall()
    grouped: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}
    for name, task, method, *rest in pool:
        grouped.setdefault((name, task, method), []).append(tuple(rest))
    for (name, task, method), members in grouped.items():
        row = rows.get((task, method))
        if row is None or (name, task) not in tasks:
            continue
        pool_rows = [{"input_id": i, "answer": a, "votes": v, "kept": k} for i, a, v, k, _ in members]
        references = {i: reference for i, _, _, _, reference in members}
        row.pools[seed_of[name]] = pool_summary(tasks[(name, task)], pool_rows, references)


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
