"""Precision is chosen from the CPU's capabilities, set explicitly, and recorded in the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2d_assets.core import hardware


@pytest.fixture
def flags(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def set_flags(*names: str) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(names))

    return set_flags


def test_avx2_only_cpus_train_and_generate_in_fp32(flags) -> None:  # type: ignore[no-untyped-def]
    flags("avx2", "fma")
    assert hardware.training_precision("auto", cuda=False, mode="lora") == "fp32"
    assert hardware.training_precision("auto", cuda=False, mode="full") == "fp32"
    assert hardware.generation_dtype_name("auto") == "float32"


def test_native_bf16_cpus_follow_the_measurement(flags) -> None:  # type: ignore[no-untyped-def]
    flags("avx2", "avx512_bf16", "amx_bf16")
    for mode in ("lora", "full"):
        assert hardware.training_precision("auto", cuda=False, mode=mode) == hardware.TRAINING_ON_NATIVE_BF16[mode]
    assert hardware.generation_dtype_name("auto") == "bfloat16"
    assert hardware.training_precision("bf16", cuda=False) == "bf16"  # an explicit choice wins
    assert hardware.training_precision("auto", cuda=True) == "bf16"


@pytest.mark.timeout(120)
def test_training_passes_the_precision_to_trl_and_records_it(
    flags, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import trl

    from s2d_assets.config.experiment import TrainingSpec
    from s2d_assets.distill.sft import train_sft

    seen = {}
    original = trl.SFTConfig.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(bf16=kwargs.get("bf16"), fp16=kwargs.get("fp16"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(trl.SFTConfig, "__init__", spy)
    flags("avx2")
    metrics = train_sft(tiny_model_dir, [("q: 1+1", "2")] * 4, TrainingSpec(epochs=1, batch_size=2), tmp_path / "out")
    assert seen == {"bf16": False, "fp16": False}  # never TRL's implicit default
    assert metrics["precision"] == "fp32"
    assert json.loads(json.dumps(metrics))["torch_threads"] >= 1
