from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from s2d_assets.config.experiment import Experiment, parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets_tests.tiny_model import build_tiny_model


@pytest.fixture(autouse=True)
def _fresh_dagster_state_storage() -> Iterator[None]:
    """Each test starts without a current defs-state storage.

    Entering a DagsterInstance sets a context-wide storage that refers back to the instance; one
    left behind by an earlier test (its instance gone) would break every later definitions load.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


def tiny_experiment_data(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "n_samples": 4,
        "model": {"source": "path", "path": str(model_dir)},
        "engine": {"kind": "transformers", "batch_size": 16, "dtype": "float32"},
        "sampling": {"temperature": 1.0, "top_p": 0.95},
        "tasks": {
            "last_letter": {"kind": "last_letter", "n_words": 2, "train_size": 6, "eval_size": 4, "name_pool": 50},
            "coin_flip": {"kind": "coin_flip", "n_people": 2, "train_size": 6, "eval_size": 4, "name_pool": 50},
        },
        "methods": {
            "rar_1step": {"kind": "rar_1step", "max_new_tokens": {"respond": 8}},
            "rar_2step": {"kind": "rar_2step", "max_new_tokens": {"rephrase": 6, "respond": 8}},
        },
        # The random model rarely agrees with itself; a low bar still exercises the whole path.
        "curation": {"min_agreement": 0.25},
        "training": {"mode": "lora", "epochs": 1, "batch_size": 4, "max_length": 256, "lora_r": 4, "lora_alpha": 8},
    }
    data.update(overrides)
    return data


@pytest.fixture
def tiny_experiment(tiny_model_dir: Path) -> Experiment:
    return parse_experiment(tiny_experiment_data(tiny_model_dir))


@pytest.fixture
def state(tmp_path: Path) -> StatePaths:
    return StatePaths(tmp_path / "state")


def write_experiment(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
