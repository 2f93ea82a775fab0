from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, ExperimentError, load_experiment
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment


def test_shipped_default_loads() -> None:
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    assert set(experiment.tasks) == {"coin_flip"}
    assert {m.kind for m in experiment.methods.values()} == {"cot_zero_shot"}
    assert experiment.n_samples == 3
    assert experiment.seed_list == (0,)  # one seed; experiments/results.yaml runs five


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["tasks"]["last_letter"].update(kind="sudoku"), "tasks.last_letter"),
        (lambda d: d["methods"]["rar_1step"].update(kind="tree_of_thought"), "methods.rar_1step.kind"),
        (lambda d: d["tasks"]["coin_flip"].pop("train_size"), "tasks.coin_flip.coin_flip.train_size"),
        (lambda d: d.update(n_samples="eight"), "n_samples"),
        (lambda d: d["training"].update(epochs=-1), "training.epochs"),
        (lambda d: d.update(unknown_field=1), "unknown_field"),
        (lambda d: d["methods"]["rar_2step"].update(prompts={"reflect": "x {question}"}), "methods.rar_2step.prompts"),
    ],
)
def test_malformed_experiment_is_refused_naming_file_and_field(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = tiny_experiment_data(tmp_path)
    mutate(data)
    path = write_experiment(tmp_path / "broken.yaml", data)
    with pytest.raises(ExperimentError) as error:
        load_experiment(path)
    message = str(error.value)
    assert str(path) in message
    assert field in message


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed")
    with pytest.raises(ExperimentError, match=r"bad\.yaml: not valid YAML"):
        load_experiment(bad)
    with pytest.raises(ExperimentError, match="not found"):
        load_experiment(tmp_path / "absent.yaml")


def test_default_experiment_is_a_taught_system_2_on_other_inputs() -> None:
    experiment = load_experiment(DEFAULT_EXPERIMENT)
    assert experiment.model.teach is not None  # a taught System 2, on other numbers of people
    taught_people = {t.n_people for t in experiment.model.teach.tasks.values()}
    assert experiment.tasks["coin_flip"].n_people not in taught_people
    assert experiment.evaluation.system1_answer == "constrained"  # System 1 answers directly


def test_results_experiment_is_the_default_with_five_seeds() -> None:
    default = load_experiment(DEFAULT_EXPERIMENT)
    results = load_experiment(DEFAULT_EXPERIMENT.parent / "results.yaml")
    assert results.seed_list == (0, 1, 2, 3, 4) and results.replicate(0).name == "results"
    assert results.tasks["coin_flip"].train_size == 256 and default.tasks["coin_flip"].train_size == 128
    same = {"seeds", "name", "tasks"}
    assert results.model_dump(exclude=same) == default.model_dump(exclude=same)
    assert results.tasks["coin_flip"].model_copy(update={"train_size": 128}) == default.tasks["coin_flip"]
