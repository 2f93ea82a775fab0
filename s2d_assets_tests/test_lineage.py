"""Staleness that means something: a change re-materialises exactly what depends on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.lineage_helpers import Project, short

METHOD_STAGES = ("s2_generations", "curated_pool", "distillation_set", "s1_checkpoint", "evaluation")
TASKS = ("last_letter", "coin_flip")


def python_stages(keys: object) -> set[str]:
    """The per-task stage assets (SQL models over the warehouse sit downstream of them too)."""
    names = {key if isinstance(key, str) else short(key) for key in keys}  # type: ignore[attr-defined]
    return {name for name in names if name.split("/")[0] in TASKS}


@pytest.fixture(scope="module")
def materialised(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full materialisation (state folder + Dagster home) that each test copies."""
    root = tmp_path_factory.mktemp("materialised")
    data = tiny_experiment_data(tiny_model_dir)
    data["checks"] = {"min_pool_size": 0}  # the random model rarely agrees with itself
    (root / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(root / "dagster_home")) as instance:
        assert Project(root, data, instance).run()
    return root


@pytest.fixture
def project(materialised: Path, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    shutil.copytree(materialised, root, symlinks=True)
    data = tiny_experiment_data(tiny_model_dir)
    data["checks"] = {"min_pool_size": 0}
    with DagsterInstance.local_temp(str(root / "dagster_home")) as instance:
        yield Project(root, data, instance)


def test_fresh_after_a_full_run(project: Project) -> None:
    assert project.stale() == set(), project.reasons()
    assert project.closure() == []


def test_filter_change_refreshes_only_the_pool_and_downstream_with_no_llm_call(project: Project) -> None:
    # 0.25 -> 0.2 with N=4: every vote share that passed still passes, so the pool content is
    # identical and nothing downstream needs a new generation.
    project.data["methods"]["rar_2step"]["curation"] = {"min_agreement": 0.2}
    assert project.stale() == {"last_letter/rar_2step/curated_pool", "coin_flip/rar_2step/curated_pool"}
    expected = {f"{task}/rar_2step/{stage}" for task in ("last_letter", "coin_flip") for stage in METHOD_STAGES[1:]}
    assert python_stages(project.closure()) == expected

    before_counts, before_cache = project.materialization_counts(), project.cache_size()
    assert project.run(project.closure())
    after_counts = project.materialization_counts()
    refreshed = {key for key, n in after_counts.items() if n != before_counts[key]}
    assert python_stages(refreshed) == expected
    assert project.cache_size() == before_cache  # zero generation-cache misses
    assert project.stale() == set(), project.reasons()


def test_prompt_change_refreshes_only_that_method(project: Project) -> None:
    project.data["methods"]["rar_1step"]["prompts"] = {"respond": '"{question}"\nRephrase the question, then answer.'}
    assert project.stale() == {
        "last_letter/rar_1step/s2_generations",
        "coin_flip/rar_1step/s2_generations",
        "last_letter/rar_1step/evaluation",
        "coin_flip/rar_1step/evaluation",
    }
    expected = {f"{task}/rar_1step/{stage}" for task in ("last_letter", "coin_flip") for stage in METHOD_STAGES}
    assert python_stages(project.closure()) == expected

    before = project.materialization_counts()
    assert project.run(project.closure())
    after = project.materialization_counts()
    assert python_stages(key for key in after if after[key] != before[key]) == expected
    assert all(after[k] == before[k] for k in after if "/rar_2step/" in k)  # the other method is untouched
    assert project.stale() == set(), project.reasons()


def test_identical_upstream_data_does_not_ripple_downstream(project: Project) -> None:
    # Re-materialising the raw inputs produces the same rows, hence the same data version.
    from dagster import AssetKey

    assert project.run([AssetKey(["tiny", "coin_flip", "raw_inputs"])])
    assert project.stale() == set(), project.reasons()


def inbox_sensor_tick(project: Project, cursor: str | None = None):  # type: ignore[no-untyped-def]
    from dagster import build_sensor_context

    defs = project.defs()
    context = build_sensor_context(instance=project.instance, definitions=defs, cursor=cursor)
    return defs.get_sensor_def("inbox_sensor")(context), context.cursor


def test_new_inbox_file_refreshes_that_task_and_costs_calls_only_for_new_inputs(project: Project) -> None:
    import json

    from s2d_assets.tasks.inbox import REJECTED

    new_prompts = [
        "A coin is heads up. Zelda flips the coin. Quentin flips the coin. Is the coin still heads up?",
        "A coin is heads up. Zelda does not flip the coin. Is the coin still heads up?",
    ]
    inbox = project.paths.inbox / "coin_flip"
    inbox.mkdir(parents=True)
    (inbox / "batch1.jsonl").write_text("\n".join(json.dumps({"prompt": p}) for p in new_prompts) + "\n")
    inputs_before = project.warehouse.count("inputs", {"task": "coin_flip"})
    cache_before = project.warehouse.query("SELECT cache_key FROM llm_cache")["cache_key"].to_list()

    # The sensor records the inbox's new data version; that makes coin_flip's inputs stale, and only them.
    result, cursor = inbox_sensor_tick(project)
    (observation,) = result.asset_events
    assert short(observation.asset_key) == "coin_flip/source_inbox"
    project.instance.report_runless_asset_event(observation)
    assert set(project.reasons()) == {"coin_flip/raw_inputs"}
    selected = {short(key) for key in project.closure()}
    assert "coin_flip/raw_inputs" in selected and "coin_flip/rar_2step/evaluation" in selected
    assert not any(key.startswith("last_letter/") for key in selected)
    assert project.run(project.closure())

    assert project.warehouse.count("inputs", {"task": "coin_flip"}) == inputs_before + 2
    new = project.warehouse.query("SELECT request FROM llm_cache WHERE NOT list_contains(?, cache_key)", [cache_before])
    system2_calls = [r for r in new["request"] if "rephrase" in r.lower()]
    assert system2_calls, "the new inputs were generated"
    assert all(any(p in r for p in new_prompts) for r in system2_calls)  # no old input was generated again

    # Nothing new in the inbox: the next tick skips.
    again, _ = inbox_sensor_tick(project, cursor)
    assert not hasattr(again, "asset_events")

    # A malformed file is moved aside with its reason; the warehouse is unchanged.
    (inbox / "bad.jsonl").write_text(json.dumps({"prompt": new_prompts[0]}) + "\n" + json.dumps({"text": "x"}) + "\n")
    counts = {t: project.warehouse.count(t) for t in ("inputs", "generations", "curated_pool", "llm_cache")}
    skipped, _ = inbox_sensor_tick(project, cursor)
    assert not hasattr(skipped, "asset_events")
    assert not (inbox / "bad.jsonl").exists()
    reason = (inbox / REJECTED / "bad.jsonl.reason.txt").read_text()
    assert "bad.jsonl: row 2" in reason and "unknown field" in reason
    assert {t: project.warehouse.count(t) for t in counts} == counts


def test_failing_blocking_check_prevents_the_checkpoint(project: Project) -> None:
    from dagster import AssetKey

    project.data["checks"] = {"min_pool_size": 10_000}
    checkpoint = "coin_flip/rar_1step/s1_checkpoint"
    before = project.materialization_counts()
    selection = [AssetKey(["tiny", "coin_flip", "rar_1step", stage]) for stage in METHOD_STAGES[2:]]
    assert not project.run(selection)  # the run reports the failed check
    after = project.materialization_counts()
    assert after["coin_flip/rar_1step/distillation_set"] == before["coin_flip/rar_1step/distillation_set"] + 1
    assert after[checkpoint] == before[checkpoint]  # not trained
    failed = {e.check_name for e in project.last_result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"pool_size"}


CONCURRENT_RUN = """
import sys
from pathlib import Path
from dagster import AssetKey, DagsterInstance
from s2d_assets.defs.automation import REFRESH
from s2d_assets.defs.definitions import build_definitions
from s2d_assets.config.experiment import load_experiment
from s2d_assets.core.paths import StatePaths
root, task = Path(sys.argv[1]), sys.argv[2]
path = root / "experiment.yaml"
defs = build_definitions(load_experiment(path), path, StatePaths(root / "state"))
keys = [AssetKey(["tiny", task, s]) for s in ("raw_inputs", "perturbed_inputs")] + [
    AssetKey(["tiny", task, m, s]) for m in ("rar_1step", "rar_2step") for s in ("s2_generations", "curated_pool")]
with DagsterInstance.from_config(str(root / "dagster_home")) as instance:
    job = defs.resolve_job_def(REFRESH)
    result = job.execute_in_process(instance=instance, asset_selection=keys, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def test_concurrent_materialisations_both_succeed(project: Project) -> None:
    import subprocess
    import sys

    from s2d_assets.defs.instance import DAGSTER_YAML

    project.defs()  # writes the experiment file
    (project.root / "dagster_home" / "dagster.yaml").write_text(DAGSTER_YAML)
    runs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_RUN, str(project.root), task])
        for task in ("last_letter", "coin_flip")
    ]
    assert [run.wait(timeout=600) for run in runs] == [0, 0]
    assert project.warehouse.count("curated_pool") == 2 * 2 * 6


def test_the_automation_sensor_requests_the_stale_closure_of_a_filter_change(project: Project) -> None:
    """The scheduled refresh is declared: a code version change makes the pools eager, and what follows."""
    from dagster import evaluate_automation_conditions

    first = evaluate_automation_conditions(defs=project.defs(), instance=project.instance)
    assert first.total_requested == 0  # after a full run: nothing missing, nothing changed

    project.data["curation"] = {"min_agreement": 0.2}  # every method's pool
    tick = evaluate_automation_conditions(defs=project.defs(), instance=project.instance, cursor=first.cursor)
    requested = {key for key in project.closure() if tick.get_num_requested(key)}
    assert requested == set(project.closure())
    assert python_stages(requested) == {
        f"{task}/{method}/{stage}"
        for task in TASKS
        for method in ("rar_1step", "rar_2step")
        for stage in METHOD_STAGES[1:]
    }
