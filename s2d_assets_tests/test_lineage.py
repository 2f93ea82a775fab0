"""Staleness that means something: a change re-materialises exactly what depends on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.lineage_helpers import Project

METHOD_STAGES = ("s2_generations", "curated_pool", "distillation_set", "s1_checkpoint", "evaluation")
TASKS = ("last_letter", "coin_flip")


def python_stages(keys: object) -> set[str]:
    """The per-task stage assets (SQL models over the warehouse sit downstream of them too)."""
    names = {key if isinstance(key, str) else key.to_user_string() for key in keys}  # type: ignore[attr-defined]
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
    expected = {
        f"{task}/rar_2step/{stage}" for task in ("last_letter", "coin_flip") for stage in METHOD_STAGES[1:]
    }
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
        "last_letter/rar_1step/s2_generations", "coin_flip/rar_1step/s2_generations",
        "last_letter/rar_1step/evaluation", "coin_flip/rar_1step/evaluation",
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

    assert project.run([AssetKey(["coin_flip", "raw_inputs"])])
    assert project.stale() == set(), project.reasons()
