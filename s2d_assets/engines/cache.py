"""The content-keyed generation cache in DuckDB, and the engine wrapper that uses it.

Misses are generated in batches and each batch is committed before the next starts, so an
interrupted stage resumes where it stopped and a re-run whose prompts did not change makes no
LLM call at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import polars as pl
from tqdm.auto import tqdm

from s2d_assets.core.faults import fault_point
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.engines.base import Completion, Engine, GenerationRequest

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    batches: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {"cache_hits": self.hits, "cache_misses": self.misses, "engine_batches": self.batches}


class GenerationCache:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def lookup(self, keys: Sequence[str]) -> dict[str, Completion]:
        if not keys:
            return {}
        wanted = pl.DataFrame({"cache_key": list(dict.fromkeys(keys))})
        with self.warehouse.connect() as con:
            con.register("wanted", wanted)
            found = con.execute(
                "SELECT c.cache_key, c.output, c.prompt_tokens, c.completion_tokens, c.seconds "
                "FROM llm_cache c JOIN wanted USING (cache_key)"
            ).fetchall()
        return {
            key: Completion(text=out, prompt_tokens=pt, completion_tokens=ct, seconds=sec or 0.0)
            for key, out, pt, ct, sec in found
        }

    def store(self, model: str, entries: Sequence[tuple[str, GenerationRequest, Completion]]) -> None:
        if not entries:
            return
        frame = pl.DataFrame(
            {
                "cache_key": [key for key, _, _ in entries],
                "model": [model] * len(entries),
                "request": [request.request_json() for _, request, _ in entries],
                "output": [c.text for _, _, c in entries],
                "prompt_tokens": [c.prompt_tokens for _, _, c in entries],
                "completion_tokens": [c.completion_tokens for _, _, c in entries],
                "seconds": [c.seconds for _, _, c in entries],
            },
            schema_overrides={"prompt_tokens": pl.Int32, "completion_tokens": pl.Int32},
        )
        with self.warehouse.transaction() as con:
            con.register("batch", frame)
            con.execute(
                "INSERT OR IGNORE INTO llm_cache "
                "(cache_key, model, request, output, prompt_tokens, completion_tokens, seconds) "
                "SELECT cache_key, model, request, output, prompt_tokens, completion_tokens, seconds FROM batch"
            )


@dataclass
class CachedEngine:
    """Serves requests from the cache, generating and committing misses batch by batch.

    ``engine_factory`` is called only on the first miss, so a fully cached stage never loads
    a model.
    """

    model_fingerprint: str
    engine_factory: Callable[[], Engine]
    cache: GenerationCache
    batch_size: int = 64
    stats: CacheStats = field(default_factory=CacheStats)
    description: str = "generating"
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        keys = [request.cache_key(self.model_fingerprint) for request in requests]
        found = self.cache.lookup(keys)
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in found and key not in missing:
                missing[key] = request
        self.stats.hits += len(requests) - len(missing)
        self.stats.misses += len(missing)
        if missing:
            self._generate_missing(missing, found)
        return [found[key] for key in keys]

    def _generate_missing(self, missing: dict[str, GenerationRequest], found: dict[str, Completion]) -> None:
        # Sort by prompt so samples of one prompt share a batch (one prefill) and lengths bucket.
        ordered = sorted(missing.items(), key=lambda kv: (len(kv[1].request_json()), kv[1].messages, kv[1].sample_idx))
        with tqdm(total=len(ordered), desc=self.description, unit="seq", leave=False) as progress:
            for start in range(0, len(ordered), self.batch_size):
                batch = ordered[start : start + self.batch_size]
                completions = self.engine.generate([request for _, request in batch])
                entries = [
                    (key, request, completion) for (key, request), completion in zip(batch, completions, strict=True)
                ]
                fault_point("generation:before_commit")  # test hooks (core/faults.py)
                self.cache.store(self.model_fingerprint, entries)
                fault_point("generation:after_batch")
                for key, _, completion in entries:
                    found[key] = completion
                self.stats.batches += 1
                progress.update(len(batch))
