"""Dagster-native operation, against a real (persistent, temporary) Dagster instance and a tiny model.

Inputs are observed data (a task file edited in place makes exactly its inputs and what follows
stale, with a data-version reason), automation is declared with public automation conditions, a
filter change costs no base-model generation, experiments live side by side, the UI gets a loss
curve and per-stage numbers, and pools export with a dataset card.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, evaluate_automation_conditions

from s2d_assets import cli
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.defs.instance import DAGSTER_YAML
from s2d_assets.defs.refresh import DependencyGraph
from s2d_assets.distill.context import StageContext
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.lineage_helpers import Project, short

QUESTIONS = [
    (f"Which is larger, {a} or {b}?", str(max(a, b))) for a, b in ((3, 5), (9, 2), (4, 7), (8, 6), (1, 2), (7, 3))
]
TASKS = ("user_qa", "coin_flip")
METHOD_STAGES = ("s2_generations", "curated_pool", "distillation_set", "s1_checkpoint", "evaluation")
SQL_MODELS = {f"analytics/{name}" for name in ("pool_summary", "agreement_histogram", "disagreements")} | {
    f"analytics/{name}" for name in ("method_comparison", "token_cost")
}


def write_questions(path: Path, replace: tuple[str, str] | None = None) -> None:
    rows = [{"question": q, "answer": a} for q, a in QUESTIONS]
    text = "".join(json.dumps(row) + "\n" for row in rows)
    path.write_text(text.replace(*replace) if replace else text)


TASK_FILE = "questions.jsonl"  # relative: resolved from the working directory, the project copy's root


def experiment_data(model_dir: Path, name: str = "tiny") -> dict[str, Any]:
    data = tiny_experiment_data(model_dir, name=name, n_samples=2)
    data["tasks"] = {
        "user_qa": {"kind": "user", "path": TASK_FILE, "answer_type": "exact", "train_size": 4, "eval_size": 2},
        "coin_flip": {"kind": "coin_flip", "n_people": 2, "train_size": 4, "eval_size": 2, "name_pool": 50},
    }
    data["methods"] = {"rar_1step": {"kind": "rar_1step", "max_new_tokens": {"respond": 8}}}
    data["checks"] = {"min_pool_size": 0}
    data["curation"] = {"filter": "none"}  # every input kept: training runs, so there is a loss curve
    return data


def open_instance(root: Path) -> DagsterInstance:
    return DagsterInstance.local_temp(str(root / "state" / "dagster_home"))


@pytest.fixture(scope="module")
def materialised(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`s2d run` of a two-task experiment (a user file and a generated task); each test copies it."""
    root = tmp_path_factory.mktemp("native")
    write_questions(root / TASK_FILE)
    home = root / "state" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with pytest.MonkeyPatch.context() as patch, open_instance(root) as instance:
        patch.chdir(root)
        assert Project(root, experiment_data(tiny_model_dir), instance).run()
    return root


@pytest.fixture
def project(
    materialised: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    root = tmp_path / "project"
    shutil.copytree(materialised, root, symlinks=True)
    # The command line works on this copy: its state folder, its Dagster home.
    monkeypatch.setenv("S2D_STATE", str(root / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "state" / "dagster_home"))
    monkeypatch.setenv("S2D_EXPERIMENT", str(root / "experiment.yaml"))
    monkeypatch.chdir(root)
    with open_instance(root) as instance:
        project = Project(root, experiment_data(tiny_model_dir), instance)
        project.defs()  # writes the experiment file
        yield project


def counts_by_stage(project: Project) -> dict[str, int]:
    return project.materialization_counts()


def s2d(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.mark.timeout(600)
def test_a_task_file_edited_in_place_makes_exactly_its_inputs_and_downstream_stale(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert project.plan().closure == []
    before = counts_by_stage(project)
    write_questions(project.root / TASK_FILE, replace=("larger", "bigger"))  # same path, new bytes

    # The dry run hashes the file without recording anything and names the data-version cause.
    assert s2d("refresh", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "tiny/user_qa/source_file" in out and "new data" in out
    assert "observed data version of tiny/user_qa/source_file changed" in out
    assert "coin_flip" not in out

    # Observed (what `s2d refresh` and the automation sensor do first): the source's new data version
    # makes user_qa/raw_inputs stale with Dagster's data cause, and nothing else.
    project.observe()
    plan = project.plan()
    assert {short(k) for k in plan.changed_sources} == {"user_qa/source_file"}
    assert set(project.reasons()) == {"user_qa/raw_inputs"}
    (why,) = project.reasons()["user_qa/raw_inputs"]
    assert why.startswith("observed data version of tiny/user_qa/source_file changed")
    graph = DependencyGraph.of(project.defs())
    expected = {short(k) for k in graph.with_descendants([AssetKey(["tiny", "user_qa", "raw_inputs"])])}
    assert {short(k) for k in plan.closure} == expected
    assert not any(key.startswith("coin_flip/") for key in expected)
    assert {f"user_qa/rar_1step/{stage}" for stage in METHOD_STAGES} <= expected
    assert SQL_MODELS.issubset(expected)

    # One refresh brings everything up to date; the other task's inputs are not touched.
    assert s2d("refresh") == 0
    assert "Refreshed" in capsys.readouterr().out
    after = counts_by_stage(project)
    assert {key for key in after if after[key] != before[key]} == expected
    assert project.plan().closure == []
    prompts = project.warehouse.query("SELECT prompt FROM inputs WHERE experiment = 'tiny' AND task = 'user_qa'")
    assert all("bigger" in p for p in prompts["prompt"])


@pytest.mark.timeout(600)
def test_automation_observes_on_cron_then_requests_exactly_the_stale_closure(project: Project) -> None:
    defs = project.defs()
    now = datetime.datetime.now(datetime.UTC)
    first = evaluate_automation_conditions(defs=defs, instance=project.instance, evaluation_time=now)
    assert first.total_requested == 0  # after a full run nothing is missing, nothing changed

    write_questions(project.root / TASK_FILE, replace=("larger", "bigger"))
    # The refresh cron (03:00 daily) passes: every source is requested for observation, nothing else.
    tick = evaluate_automation_conditions(
        defs=defs, instance=project.instance, cursor=first.cursor, evaluation_time=now + datetime.timedelta(days=1)
    )
    sources = DependencyGraph.of(defs).sources
    assert {k for k in sources if tick.get_num_requested(k)} == set(sources)
    assert tick.total_requested == len(sources)

    project.observe()  # the observation run the sensor launched
    after = evaluate_automation_conditions(
        defs=defs,
        instance=project.instance,
        cursor=tick.cursor,
        evaluation_time=now + datetime.timedelta(days=1, minutes=1),
    )
    requested = {short(key) for key in project.plan().closure if after.get_num_requested(key)}
    assert requested == {short(key) for key in project.plan().closure}
    assert after.total_requested == len(project.plan().closure)


@pytest.mark.timeout(600)
def test_a_filter_change_rematerialises_from_the_pool_on_with_no_base_model_generation(project: Project) -> None:
    experiment = parse_experiment(project.data, project.experiment_path)
    base = StageContext(experiment, project.paths).base_model()
    base_producer = f"{base.fingerprint}:{experiment.engine.producer}"

    def base_calls() -> int:  # generation-cache entries (each one a generation) of the base model
        return project.warehouse.count("llm_cache", {"model": base_producer})

    before, calls = counts_by_stage(project), base_calls()
    project.data["curation"] = {"filter": "self_consistency"}  # drops inputs whose samples disagree
    pools = {f"{task}/rar_1step/curated_pool" for task in TASKS}
    assert set(project.reasons()) == pools
    assert all(why[0].startswith("code version changed") for why in project.reasons().values())
    assert project.run(project.plan().closure)

    after = counts_by_stage(project)
    refreshed = {key for key in after if after[key] != before[key]}
    downstream = {f"{task}/rar_1step/{stage}" for task in TASKS for stage in METHOD_STAGES[1:]}
    assert refreshed == downstream | SQL_MODELS
    assert base_calls() == calls  # zero generations by the base model, System 1 or System 2
    for key in ("raw_inputs", "perturbed_inputs", "s1_generations", "rar_1step/s2_generations"):
        assert after[f"user_qa/{key}"] == before[f"user_qa/{key}"]
    misses = project.instance.get_latest_materialization_event(AssetKey(["tiny", "user_qa", "rar_1step", "evaluation"]))
    metadata = misses.asset_materialization.metadata
    assert "wall_seconds" in metadata and "cache_hits" in metadata
    assert project.plan().closure == []


@pytest.mark.timeout(600)
def test_after_a_full_run_an_unchanged_refresh_materialises_nothing(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    before = counts_by_stage(project)
    runs = len(project.instance.get_runs())
    assert s2d("refresh") == 0
    assert "Everything is up to date" in capsys.readouterr().out
    assert counts_by_stage(project) == before
    assert len(project.instance.get_runs()) == runs  # not even an observation run: no source changed


@pytest.mark.timeout(600)
def test_the_checkpoint_shows_its_loss_curve_and_every_stage_its_numbers(project: Project) -> None:
    from s2d_assets.defs.run_report import format_timings, run_timings

    event = project.instance.get_latest_materialization_event(
        AssetKey(["tiny", "user_qa", "rar_1step", "s1_checkpoint"])
    )
    metadata = event.asset_materialization.metadata
    log = metadata["training_log"].value
    assert log and all({"step", "loss", "learning_rate"} <= set(entry) for entry in log)
    assert [entry["step"] for entry in log] == sorted(entry["step"] for entry in log)
    assert "data:image/png;base64," in metadata["loss_curve"].value
    generations = project.instance.get_latest_materialization_event(
        AssetKey(["tiny", "coin_flip", "rar_1step", "s2_generations"])
    ).asset_materialization.metadata
    assert generations["cache_misses"].value > 0 and generations["samples_per_second"].value > 0
    assert generations["wall_seconds"].value > 0

    (run,) = [r for r in project.instance.get_runs() if r.job_name == "materialize_all"]
    rows = run_timings(project.instance, run.run_id)
    labels = {row.label for row in rows}
    assert "user_qa/source_file" in labels and "coin_flip/rar_1step/s1_checkpoint" in labels
    assert sum(row.cache_misses for row in rows) == project.warehouse.count("llm_cache")
    assert format_timings(rows).splitlines()[-1].startswith("total")


@pytest.mark.timeout(900)
def test_two_experiments_side_by_side_keep_both_histories_and_results(
    project: Project, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Project(project.root, experiment_data(tiny_model_dir, "other"), project.instance)
    other.experiment_path = project.root / "other.yaml"
    other.data["tasks"] = {"coin_flip": other.data["tasks"]["coin_flip"]}
    assert other.run()

    for name, tasks in (("tiny", {"user_qa", "coin_flip"}), ("other", {"coin_flip"})):
        assert s2d("results", "--experiment", name, "--format", "json") == 0
        rows = json.loads(capsys.readouterr().out)
        assert {row["experiment"] for row in rows} == {name} and {row["task"] for row in rows} == tasks
        key = AssetKey([name, "coin_flip", "rar_1step", "evaluation"])
        assert project.instance.get_latest_materialization_event(key) is not None
    assert s2d("results", "--experiment", "other", "--format", "csv") == 0
    assert capsys.readouterr().out.startswith("experiment,task,method,system")
    assert s2d("results", "-e", "other", "--format", "markdown") == 0
    assert capsys.readouterr().out.startswith("| experiment | task |")
    assert s2d("results", "--experiment", "nobody") == 2
    assert "experiments with results: other, tiny" in capsys.readouterr().err
    # The shipped SQL models keep the experiments apart.
    comparison = project.warehouse.query("SELECT experiment, task FROM analytics.method_comparison ORDER BY ALL")
    assert comparison.rows() == [("other", "coin_flip"), ("tiny", "coin_flip"), ("tiny", "user_qa")]
    # The first experiment is still fresh: the second wrote only its own rows and keys.
    assert project.plan().closure == []


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl"])
def test_export_round_trips_with_a_dataset_card(project: Project, tmp_path: Path, fmt: str) -> None:
    import datasets
    import polars as pl

    pool = "tiny/user_qa/rar_1step/curated_pool"
    out = tmp_path / "export"
    assert s2d("export", pool, "--format", fmt, "--out", str(out)) == 0
    expected = project.warehouse.query(
        "SELECT * FROM curated_pool WHERE experiment = 'tiny' AND task = 'user_qa' AND method = 'rar_1step' "
        "ORDER BY input_id"
    )
    if fmt == "hf":
        loaded = datasets.load_from_disk(str(out)).to_list()
    elif fmt == "parquet":
        loaded = pl.read_parquet(out / "data.parquet").to_dicts()
    else:
        loaded = pl.read_ndjson(out / "data.jsonl").to_dicts()
    assert loaded == expected.to_dicts()
    card = (out / "README.md").read_text()
    pool_version = project.instance.get_latest_materialization_event(
        AssetKey(pool.split("/"))
    ).asset_materialization.tags["dagster/data_version"]
    assert f"| `{pool}` | `{pool_version}` |" in card  # lineage: the data versions it was built from
    assert "tiny/user_qa/source_file" in card and "`filter`: none" in card and f"| rows | {expected.height} |" in card


@pytest.mark.timeout(600)
def test_the_export_job_writes_inside_the_state_folder(project: Project) -> None:
    job = project.defs().resolve_job_def("export_pools")
    config = {"ops": {"write_exports": {"config": {"format": "jsonl"}}}}  # every pool and set of the experiment
    assert job.execute_in_process(instance=project.instance, run_config=config).success
    for task in TASKS:
        for stage in ("curated_pool", "distillation_set"):
            folder = project.paths.root / "exports" / "tiny" / task / "rar_1step" / stage / "jsonl"
            rows = project.warehouse.count(stage, {"task": task, "method": "rar_1step"})
            assert len((folder / "data.jsonl").read_text().splitlines()) == rows
            assert f"| rows | {rows} |" in (folder / "README.md").read_text()
    assert s2d("export", "tiny/nope/rar_1step/curated_pool") == 2  # a user error: one line, exit status 2


def test_no_private_dagster_import_in_the_package() -> None:
    """Public Dagster API only (``test_layers`` checks the same on the import graph; this reads the text)."""
    private = "dagster" + "._"
    root = Path(__file__).resolve().parent.parent
    offenders = [
        str(path.relative_to(root))
        for path in (root / "s2d_assets").rglob("*.py")
        if f"from {private}" in path.read_text() or f"import {private}" in path.read_text()
    ]
    assert offenders == []
    helpers = [root / "s2d_assets_tests" / name for name in ("lineage_helpers.py", "test_sql_staleness.py")]
    assert not [path.name for path in helpers if private in path.read_text()]
