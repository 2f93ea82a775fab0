"""LLM engines behind one interface, and the generation cache every call goes through."""

from __future__ import annotations

from pathlib import Path

from s2d_assets.config.engine import EngineSpec, OpenAICompatEngineSpec, TransformersEngineSpec, VLLMEngineSpec
from s2d_assets.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from s2d_assets.engines.cache import CachedEngine, CacheStats, GenerationCache


def build_engine(spec: EngineSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None = None) -> Engine:
    """Construct the engine the experiment asks for (loads weights: call only on a cache miss)."""
    if isinstance(spec, TransformersEngineSpec):
        from s2d_assets.engines.hf import TransformersEngine

        return TransformersEngine.from_dir(
            model_dir, fingerprint, dtype=spec.dtype, adapter_dir=adapter_dir, max_batch=spec.batch_size
        )
    if isinstance(spec, OpenAICompatEngineSpec):
        from s2d_assets.engines.openai_compat import OpenAICompatEngine

        if adapter_dir is not None:
            raise ValueError(
                f"engine.kind 'openai_compat' cannot load the LoRA checkpoint {adapter_dir}: serve it from the "
                "server (e.g. vLLM serve --lora-modules) and point engine.model at it, or use 'transformers'/'vllm'"
            )
        return OpenAICompatEngine(spec, fingerprint)
    if isinstance(spec, VLLMEngineSpec):
        from s2d_assets.engines.vllm_engine import VLLMEngine

        return VLLMEngine(spec, str(model_dir), fingerprint, adapter_dir)
    raise ValueError(f"engine.kind: unknown engine {spec!r}")


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
