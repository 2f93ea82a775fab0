"""What this machine can do fast: the one place precision is chosen from the CPU's capabilities.

Machines of one kind differ: some CPUs have native bfloat16 (AVX-512 BF16 or AMX), others only
AVX2, where bfloat16 matrix multiplies fall back to a path an order of magnitude slower. The
choices below follow measurements (``benchmarks/engine_throughput.py``, ``benchmarks/train_step.py``,
recorded in ``docs/benchmarks.md``), never a library default.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# Measured on a CPU with native bf16 (docs/benchmarks.md, "Training step per precision", idle machine,
# activation checkpointing off as the pipeline trains): the faster training precision there per mode
# (LoRA: bf16 autocast, 4.6 s against 5.6 s a step; full fine-tuning: bf16 autocast, 5.7 s against
# 6.6 s). Without native bf16, fp32 is always chosen (bf16 falls back to a path about 15x slower there).
TRAINING_ON_NATIVE_BF16 = {"lora": "bf16", "full": "bf16"}


@cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_supports_bf16() -> bool:
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def generation_dtype_name(requested: str) -> str:
    """``float32`` or ``bfloat16`` for CPU generation; ``auto`` takes bf16 only where the CPU has it natively."""
    if requested != "auto":
        return requested
    return "bfloat16" if cpu_supports_bf16() else "float32"


def training_precision(requested: str, cuda: bool, mode: str = "lora") -> str:
    """``fp32`` or ``bf16`` for fine-tuning; ``auto`` follows the measurements above (bf16 on GPUs)."""
    if requested != "auto":
        return requested
    if cuda:
        return "bf16"
    return TRAINING_ON_NATIVE_BF16[mode] if cpu_supports_bf16() else "fp32"
