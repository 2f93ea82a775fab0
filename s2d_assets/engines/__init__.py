"""LLM engines behind one interface, and the generation cache every call goes through.

Each kind's spec class and builder are registered in ``config/engine.py`` (``ENGINES``).
"""

from __future__ import annotations

from pathlib import Path

from s2d_assets.config.engine import ENGINES, EngineSpec
from s2d_assets.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from s2d_assets.engines.cache import CachedEngine, CacheStats, GenerationCache


def build_engine(spec: EngineSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None = None) -> Engine:
    """Construct the engine the experiment asks for (loads weights: call only on a cache miss)."""
    return ENGINES.implementation(spec.kind)(spec, model_dir, fingerprint, adapter_dir)


__all__ = [
    "ENGINES",
    "CacheStats",
    "CachedEngine",
    "Completion",
    "Engine",
    "GenerationCache",
    "GenerationRequest",
    "SamplingParams",
    "build_engine",
]
