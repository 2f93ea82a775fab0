from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from s2d_assets.core.checkpoints import CURRENT, MANIFEST, publish_checkpoint, read_manifest
from s2d_assets.core.errors import StateError


def fake_train(text: str):  # type: ignore[no-untyped-def]
    def train(staging: Path) -> None:
        (staging / "adapter_model.safetensors").write_text(text)

    return train


def test_publish_writes_weights_card_and_manifest(tmp_path: Path) -> None:
    card = {"experiment": "e", "task": "t", "method": "m", "mode": "lora", "pool_size": 3, "base_model": "b"}
    path = publish_checkpoint(tmp_path, "v1", fake_train("w1"), card)
    assert path == tmp_path / "v1"
    assert (path / "adapter_model.safetensors").read_text() == "w1"
    readme = (path / "README.md").read_text()
    assert "pool_size | 3" in readme and "base_model: b" in readme
    assert read_manifest(path)["version"] == "v1"
    assert (tmp_path / CURRENT).resolve() == path.resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_crash_during_training_leaves_previous_checkpoint_untouched(tmp_path: Path) -> None:
    card = {"mode": "lora", "pool_size": 1}
    publish_checkpoint(tmp_path, "v1", fake_train("old"), card)

    def crash(staging: Path) -> None:
        (staging / "adapter_model.safetensors").write_text("half")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        publish_checkpoint(tmp_path, "v2", crash, card)
    assert not (tmp_path / "v2").exists()
    assert (tmp_path / CURRENT).resolve() == (tmp_path / "v1").resolve()
    assert (tmp_path / CURRENT / "adapter_model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURRENT, "v1"]


def test_an_existing_complete_version_is_reused_not_retrained(tmp_path: Path) -> None:
    publish_checkpoint(tmp_path, "v1", fake_train("w"), {"mode": "lora"})
    publish_checkpoint(tmp_path, "v2", fake_train("w2"), {"mode": "lora"})

    def must_not_run(staging: Path) -> None:
        raise AssertionError("retrained")

    path = publish_checkpoint(tmp_path, "v1", must_not_run, {"mode": "lora"})
    assert (tmp_path / CURRENT).resolve() == path.resolve()
    assert (path / MANIFEST).exists()


# -- markers: atomic, validated, a damaged one is never taken for finished ---------------------------
@pytest.mark.parametrize("damage", ["", "{", '{"version": "v1"}', '["v1"]', '{"version": "v9", "fingerprint": "f"}'])
def test_a_damaged_manifest_is_not_finished_and_is_rebuilt(tmp_path: Path, damage: str) -> None:
    from s2d_assets.core.checkpoints import is_complete

    publish_checkpoint(tmp_path, "v1", fake_train("w"), {"mode": "lora"})
    (tmp_path / "v1" / MANIFEST).write_text(damage)
    assert not is_complete(tmp_path / "v1")
    with pytest.raises(StateError, match=rf"{tmp_path / 'v1' / MANIFEST}: .*delete .* and materialise"):
        read_manifest(tmp_path / CURRENT)
    trained = []
    publish_checkpoint(tmp_path, "v1", lambda staging: trained.append(fake_train("w")(staging)), {"mode": "lora"})
    assert trained, "a checkpoint whose marker does not parse was taken for finished"
    assert read_manifest(tmp_path / CURRENT)["version"] == "v1"


def test_staging_left_by_a_dead_process_is_cleaned_at_the_next_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    from s2d_assets.core.checkpoints import clean_staging
    from s2d_assets.core.paths import StatePaths

    paths = StatePaths(tmp_path / "state")
    root = paths.checkpoint("e", "t", "m")
    root.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    leftovers = [root / f".staging-pid{pid}-abc", root / ".staging-old", paths.models / f".smol-pid{pid}-x"]
    for folder in leftovers:
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_text("half")
    (root / f".current-pid{pid}").symlink_to("v1")
    (paths.root / f".warehouse.read.duckdb.pid{pid}.tmp").write_text("partial copy")
    alive = root / f".staging-pid{os.getpid()}-live"  # a concurrent run's staging folder stays
    alive.mkdir()
    removed = clean_staging(paths)
    assert len(removed) == 5
    assert sorted(p.name for p in root.iterdir()) == [alive.name]
    assert not list(paths.models.iterdir()) and not list(paths.root.glob("*.tmp"))


def test_model_fingerprint_marker_damaged_is_rebuilt_and_user_dirs_are_not_written(tmp_path: Path) -> None:
    from s2d_assets.core.base_models import FINGERPRINT_FILE, fingerprint_dir, local_model

    model = tmp_path / "user-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    models = tmp_path / "state" / "models"
    first = local_model(model, models)
    assert not (model / FINGERPRINT_FILE).exists()  # nothing written in the user's folder
    (marker,) = (models / ".fingerprints").iterdir()
    for damage in ("", "{", "[]", '{"stamp": 1}'):
        marker.write_text(damage)
        assert local_model(model, models).fingerprint == first.fingerprint
        assert json.loads(marker.read_text())["fingerprint"] == first.fingerprint
    inside = tmp_path / "state" / "models" / "embedded"
    inside.mkdir()
    (inside / "config.json").write_text("{}")
    (inside / FINGERPRINT_FILE).write_text("{trunc")
    fingerprint = fingerprint_dir(inside)
    assert json.loads((inside / FINGERPRINT_FILE).read_text())["fingerprint"] == fingerprint
