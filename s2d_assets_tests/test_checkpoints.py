from __future__ import annotations

from pathlib import Path

import pytest

from s2d_assets.core.checkpoints import CURRENT, MANIFEST, publish_checkpoint, read_manifest


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
