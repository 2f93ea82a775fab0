"""LLM engines behind one interface, and the generation cache every call goes through."""

from __future__ import annotations

from pathlib import Path

from s2d_assets.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from s2d_assets.engines.cache import CachedEngine, CacheStats, GenerationCache
from s2d_assets.experiment import EngineSpec


def build_engine(spec: EngineSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None = None) -> Engine:
    """Construct the engine the experiment asks for (loads weights: call only on a cache miss)."""
    if spec.kind == "transformers":
        from s2d_assets.engines.hf import TransformersEngine

        return TransformersEngine.from_dir(model_dir, fingerprint, dtype=spec.dtype, adapter_dir=adapter_dir)
    raise ValueError(f"engine.kind: unknown engine {spec.kind!r}")


__all__ = [
    "CacheStats",
    "CachedEngine",
    "Completion",
    "Engine",
    "GenerationCache",
    "GenerationRequest",
    "SamplingParams",
    "build_engine",
]
