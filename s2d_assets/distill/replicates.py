"""Seeds as replicates: one ``StageContext`` per seed, and one result per stage over all of them.

An experiment with ``seeds: [0, 1, 2]`` runs every stage once per seed. Each seed is a replicate
experiment (``Experiment.replicate``): its own draw of task inputs (the train/eval split), its own
sampling seed and training order, its rows under its own name in every warehouse table (the
experiment's name for the first seed, ``<name>.seed<k>`` for the others) and its own checkpoints.
The asset graph does not grow with the seeds: each asset materialises its stage for every
replicate, and its code version, data version and metadata cover them all. One seed (the
default) is exactly the experiment as written. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from s2d_assets.core.fingerprint import content_hash
from s2d_assets.core.stage_result import StageResult
from s2d_assets.distill.context import StageContext

_CACHE_ATTRIBUTE = "_s2d_replicate_contexts"


def replicate_contexts(ctx: StageContext) -> list[StageContext]:
    """One context per seed of ``ctx.experiment`` (``ctx`` itself when there is one seed), built once."""
    cached = getattr(ctx, _CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = [
            ctx if replicate is ctx.experiment else StageContext(replicate, ctx.paths, ctx.engine_factory)
            for replicate in ctx.experiment.replicates()
        ]
        setattr(ctx, _CACHE_ATTRIBUTE, cached)
    return cached


def replicate_names(ctx: StageContext) -> list[str]:
    return [replicate.experiment.name for replicate in replicate_contexts(ctx)]


def combined_version(ctx: StageContext, version: Callable[[StageContext], str]) -> str:
    """A stage's code version over the replicates: its own version when there is one seed."""
    versions = [version(replicate) for replicate in replicate_contexts(ctx)]
    return versions[0] if len(versions) == 1 else content_hash({"replicate_versions": versions})


def run_replicates(ctx: StageContext, run: Callable[[StageContext], StageResult]) -> StageResult:
    """Run a stage for every replicate, in seed order, and merge the results."""
    replicates = replicate_contexts(ctx)
    results = [run(replicate) for replicate in replicates]
    return merge_results([r.experiment.seed for r in replicates], results)


def merge_results(seeds: Sequence[int], results: Sequence[StageResult]) -> StageResult:
    """One result for several seeds: data version over all, metadata and markdown per seed.

    With one seed the result is returned unchanged. Otherwise every metadata key becomes
    ``seed<k>/<key>``, numbers that add up (rows, cache hits and misses) are also summed under
    their own key, and each markdown section is shown once per seed under a heading.
    """
    if len(results) == 1:
        return results[0]
    metadata: dict[str, object] = {"seeds": ", ".join(str(seed) for seed in seeds)}
    for key in ("rows", "inputs", "examples", "cache_hits", "cache_misses", "engine_batches"):
        values = [r.metadata.get(key) for r in results]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            metadata[key] = sum(values)  # type: ignore[arg-type]
    for seed, result in zip(seeds, results, strict=True):
        metadata |= {f"seed{seed}/{key}": value for key, value in result.metadata.items()}
    sections: dict[str, list[str]] = {}
    for seed, result in zip(seeds, results, strict=True):
        for name, text in result.markdown.items():
            sections.setdefault(name, []).append(f"**seed {seed}**\n\n{text}")
    return StageResult(
        data_version=content_hash({"replicates": [r.data_version for r in results], "seeds": list(seeds)}),
        metadata=metadata,
        markdown={name: "\n\n".join(parts) for name, parts in sections.items()},
    )
