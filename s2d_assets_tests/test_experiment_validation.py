"""The experiment file is checked whole at load: encoding, keys, numbers, sizes, names, cron, prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from s2d_assets.config.experiment import ExperimentError, load_experiment
from s2d_assets.config.validation import cron_problem
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment


def refused(path: Path) -> str:
    with pytest.raises(ExperimentError) as error:
        load_experiment(path)
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(tiny_experiment_data(tmp_path)).encode() + "# caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in refused(path)


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(tiny_experiment_data(tmp_path)) + "n_samples: 2\n"
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    message = refused(path)
    assert "duplicate key 'n_samples'" in message and "line" in message


def test_nested_duplicate_keys_are_refused_but_merge_keys_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text(
        "name: x\ntasks:\n  t:\n    kind: coin_flip\n    train_size: 2\n    train_size: 3\n    eval_size: 2\n"
        "methods:\n  m: {kind: rar_1step}\n"
    )
    assert "duplicate key 'train_size'" in refused(path)
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        "name: x\nsizes: &sizes {train_size: 2, eval_size: 2}\n"
        "tasks:\n  t: {<<: *sizes, kind: coin_flip, train_size: 3}\nmethods:\n  m: {kind: rar_1step}\n"
    )
    # The anchor key itself is unknown to the schema; what matters is that `<<` is not a duplicate.
    assert "duplicate key" not in refused(merged)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["sampling"].update(temperature=float("inf")), "sampling.temperature"),
        (lambda d: d["sampling"].update(temperature="nan"), "sampling.temperature"),
        (lambda d: d["training"].update(learning_rate=float("-inf")), "training.learning_rate"),
        (lambda d: d["curation"].update(min_agreement=float("nan")), "curation.min_agreement"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = tiny_experiment_data(tmp_path)
    mutate(data)
    assert field in refused(write_experiment(tmp_path / "inf.yaml", data))


def test_yaml_inf_literal_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(tiny_experiment_data(tmp_path)).replace("temperature: 1.0", "temperature: .inf")
    path = tmp_path / "inf.yaml"
    path.write_text(text)
    assert "sampling.temperature" in refused(path)


@pytest.mark.parametrize(
    ("mutate", "field", "limit"),
    [
        (lambda d: d.update(n_samples=10**9), "n_samples", "n_samples"),
        (lambda d: d["tasks"]["coin_flip"].update(train_size=10**7), "tasks.coin_flip.train_size", "train_size"),
        (lambda d: d["methods"]["rar_1step"]["max_new_tokens"].update(respond=10**6), "respond", "max_new_tokens"),
        (lambda d: d["training"].update(epochs=10**4), "training.epochs", "epochs"),
    ],
)
def test_absurd_sizes_are_refused_unless_the_limit_is_raised(tmp_path: Path, mutate, field: str, limit: str) -> None:  # type: ignore[no-untyped-def]
    data = tiny_experiment_data(tmp_path)
    mutate(data)
    message = refused(write_experiment(tmp_path / "big.yaml", data))
    assert field in message and f"limits: {{{limit}:" in message
    data["limits"] = {limit: 10**9}
    data["model"] = {"source": "embedded"}
    load_experiment(write_experiment(tmp_path / "big.yaml", data))


def test_unknown_limit_is_refused(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path, limits={"n_sample": 100})
    assert "limits.n_sample" in refused(write_experiment(tmp_path / "l.yaml", data))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(name="../../escape"), "name"),
        (lambda d: d.update(name="Tiny"), "name"),
        (lambda d: d.update(name=""), "name"),
        (lambda d: d.update(name="a/b"), "name"),
        (lambda d: d["tasks"].update({"bad name": d["tasks"].pop("coin_flip")}), "tasks"),
        (lambda d: d["methods"].update({"../m": d["methods"].pop("rar_1step")}), "methods"),
    ],
)
def test_names_are_slugs(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = tiny_experiment_data(tmp_path)
    mutate(data)
    message = refused(write_experiment(tmp_path / "names.yaml", data))
    assert field in message and "slug" in message


@pytest.mark.parametrize(
    "cron", ["0 3 * * *", "*/15 * * * *", "0 0 1 jan,jul *", "30 6 * * mon-fri", "@daily", "0 0 * * 7", "0 0 * * 1#2"]
)
def test_cron_strings_dagster_accepts_load(tmp_path: Path, cron: str) -> None:
    from dagster import ScheduleDefinition

    assert cron_problem(cron) is None
    ScheduleDefinition(name="s", job_name="j", cron_schedule=cron)  # Dagster agrees


@pytest.mark.parametrize(
    "cron",
    ["0 3 * *", "61 * * * *", "0 3 * * * *", "every day", "0 25 * * *", "*/0 * * * *", "? * * * *", "0 0 * * 8"],
)
def test_bad_cron_is_refused_at_load(tmp_path: Path, cron: str) -> None:
    from dagster import DagsterInvalidDefinitionError, ScheduleDefinition

    with pytest.raises(DagsterInvalidDefinitionError):
        ScheduleDefinition(name="s", job_name="j", cron_schedule=cron)  # Dagster agrees it is bad
    data = tiny_experiment_data(tmp_path, schedule={"refresh_cron": cron})
    assert "schedule.refresh_cron" in refused(write_experiment(tmp_path / "cron.yaml", data))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Answer this.", "must contain {question}"),
        ("{question} and {answer_key}", "unknown placeholder(s) {answer_key}"),
        ("{question", "broken placeholder"),
        ("{question} }", "broken placeholder"),
        ("{} {question}", "positional placeholder"),
        ("{question!r}", "no conversion"),
    ],
)
def test_prompt_overrides_are_checked_at_load(tmp_path: Path, template: str, expected: str) -> None:
    data = tiny_experiment_data(tmp_path)
    data["methods"]["rar_2step"]["prompts"] = {"respond": template}
    message = refused(write_experiment(tmp_path / "prompt.yaml", data))
    assert "methods.rar_2step.prompts.respond" in message and expected in message


def test_prompt_override_with_earlier_steps_and_literal_braces_loads(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    data["model"] = {"source": "embedded"}
    data["methods"]["rar_2step"]["prompts"] = {"respond": "{{json}} {rephrase}\n\nQ: {question}"}
    load_experiment(write_experiment(tmp_path / "ok.yaml", data))


def test_budget_override_must_be_positive(tmp_path: Path) -> None:
    data = tiny_experiment_data(tmp_path)
    data["methods"]["rar_1step"]["max_new_tokens"] = {"respond": 0}
    assert "methods.rar_1step.max_new_tokens.respond" in refused(write_experiment(tmp_path / "b.yaml", data))


def test_config_layer_imports_without_dagster() -> None:
    import subprocess
    import sys

    code = "import sys, s2d_assets.config.experiment; assert 'dagster' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
