"""The content-keyed generation cache in DuckDB, and the engine wrapper that uses it.

Misses are generated in batches and each batch is committed before the next starts, so an
interrupted stage resumes where it stopped and a re-run whose prompts did not change makes no
LLM call at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import polars as pl
from tqdm.auto import tqdm

from s2d_assets.core.faults import fault_point
from s2d_assets.core.progress import count_generations, report
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.engines.base import Completion, Engine, GenerationRequest, known_finish_reason
from s2d_assets.engines.remote import FAILED_COMPLETION, RemoteGenerator

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    batches: int = 0
    failed: int = 0  # rows a remote job could not generate (in generation_failures, not cached)
    remote: dict[str, float | int] = field(default_factory=dict)  # summed metadata of remote jobs

    def as_metadata(self) -> dict[str, int | float]:
        metadata: dict[str, int | float] = {
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "engine_batches": self.batches,
        }
        if self.remote or self.failed:
            metadata["failed_rows"] = self.failed
            metadata |= {name: round(value, 3) for name, value in self.remote.items()}
            rows, seconds = self.remote.get("ray_rows", 0), self.remote.get("ray_seconds", 0.0)
            if rows and seconds:
                metadata["ray_samples_per_second"] = round(rows / seconds, 2)
        return metadata


def miss_order(item: tuple[str, GenerationRequest]) -> tuple[object, ...]:
    """Misses sorted by prompt, so samples of one prompt share a batch (one prefill) and lengths bucket."""
    _, request = item
    return (len(request.request_json()), request.messages, request.sample_idx)


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
                "SELECT c.cache_key, c.output, c.prompt_tokens, c.completion_tokens, c.seconds, c.finish_reason "
                "FROM llm_cache c JOIN wanted USING (cache_key)"
            ).fetchall()
        return {
            key: Completion(text=out, prompt_tokens=pt, completion_tokens=ct, seconds=sec or 0.0, finish_reason=fr)
            for key, out, pt, ct, sec, fr in found
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
                "finish_reason": [c.finish_reason for _, _, c in entries],
            },
            schema_overrides={"prompt_tokens": pl.Int32, "completion_tokens": pl.Int32, "finish_reason": pl.String},
        )
        with self.warehouse.transaction() as con:
            con.register("batch", frame)
            con.execute(
                "INSERT OR IGNORE INTO llm_cache "
                "(cache_key, model, request, output, prompt_tokens, completion_tokens, seconds, finish_reason) "
                "SELECT cache_key, model, request, output, prompt_tokens, completion_tokens, seconds, finish_reason "
                "FROM batch"
            )

    def record_failures(self, model: str, stage: str, failures: Sequence[tuple[str, GenerationRequest, str]]) -> None:
        """Log rows that could not be generated (``generation_failures``); they are never cached."""
        if not failures:
            return
        frame = pl.DataFrame(
            {
                "cache_key": [key for key, _, _ in failures],
                "model": [model] * len(failures),
                "stage": [stage] * len(failures),
                "request": [request.request_json() for _, request, _ in failures],
                "error": [error for _, _, error in failures],
            }
        )
        with self.warehouse.transaction() as con:
            con.register("failed", frame)
            con.execute(
                "INSERT INTO generation_failures (cache_key, model, stage, request, error) "
                "SELECT cache_key, model, stage, request, error FROM failed"
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
    # When set, every miss of a call is generated by one remote job (engine.executor: ray) instead.
    remote: RemoteGenerator | None = None
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
        started = time.perf_counter()
        if missing:
            self._generate_missing(missing, found)
        count_generations(len(requests) - len(missing), len(missing), time.perf_counter() - started)
        return [found[key] for key in keys]

    def _generate_missing(self, missing: dict[str, GenerationRequest], found: dict[str, Completion]) -> None:
        if self.remote is not None:
            self._generate_remote(self.remote, missing, found)
            return
        ordered = sorted(missing.items(), key=miss_order)
        batches = -(-len(ordered) // self.batch_size)
        report(f"{self.description}: generating {len(ordered)} sequence(s) in {batches} batch(es)")
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
                report(
                    f"{self.description}: {min(start + len(batch), len(ordered))}/{len(ordered)} sequences generated"
                )

    def _generate_remote(
        self, remote: RemoteGenerator, missing: dict[str, GenerationRequest], found: dict[str, Completion]
    ) -> None:
        """One remote job for every miss, then one writer step: completions cached, failures logged."""
        result = remote.generate(self.model_fingerprint, self.description, sorted(missing.items(), key=miss_order))
        lost = set(missing) - set(result.completions) - set(result.failures)
        if lost:
            raise RuntimeError(f"{self.description}: the generation job returned no row for {len(lost)} request(s)")
        completions = {  # a remote processor that does not say why it stopped: inferred from the budget
            key: replace(c, finish_reason=known_finish_reason(missing[key], c)) for key, c in result.completions.items()
        }
        self.cache.store(self.model_fingerprint, [(key, missing[key], c) for key, c in completions.items()])
        failures = [(key, missing[key], error) for key, error in result.failures.items()]
        self.cache.record_failures(self.model_fingerprint, self.description, failures)
        result.finish()  # staged results are in the warehouse now
        found.update(completions)
        found.update({key: FAILED_COMPLETION for key in result.failures})
        self.stats.batches += 1
        self.stats.failed += len(failures)
        for name, value in result.metadata.items():
            self.stats.remote[name] = self.stats.remote.get(name, 0) + value
        if failures:
            log.warning("%s: %d row(s) failed; see the generation_failures table", self.description, len(failures))
            report(f"{self.description}: {len(failures)} row(s) failed (generation_failures table)")
