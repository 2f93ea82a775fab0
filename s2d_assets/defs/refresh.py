"""What a refresh must materialise so that everything is up to date again, on Dagster's public API.

An asset is *missing* when it was never materialised, and *stale* when what it was built from
moved since its latest materialisation, read from the tags Dagster writes on it:

- its code version (``dagster/code_version``) differs from the one in the definitions;
- a parent's data version differs from the one it read (``dagster/input_data_version/<parent>``):
  the parent's latest materialisation, or, for a source, its latest observation;
- a parent was added or removed.

Those are Dagster's own stale causes (code, data, dependencies). Staleness is not transitive: when
``curated_pool`` is stale its ``distillation_set`` still looks fresh, because the pool has not
changed yet. A refresh therefore observes the sources first, then takes every stale or missing
asset *and everything downstream of it* (the stale closure) and materialises that set in one run.
Downstream assets whose inputs come back identical cost a cache lookup.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from s2d_assets.defs.automation import OBSERVE_SOURCES
from s2d_assets.defs.common import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    INPUT_DATA_VERSION_PREFIX,
    latest_materialized_version,
    latest_observed_version,
)

MISSING = "missing: never materialised"


def _short(version: str | None) -> str:
    return (version or "none")[:12]


@dataclass(frozen=True)
class DependencyGraph:
    """The assets of a ``Definitions``: parents, code versions, and which are observable sources."""

    parents: Mapping[AssetKey, tuple[AssetKey, ...]]
    code_versions: Mapping[AssetKey, str | None]
    sources: frozenset[AssetKey]
    children: Mapping[AssetKey, tuple[AssetKey, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, defs: Definitions) -> DependencyGraph:
        specs = defs.resolve_all_asset_specs()
        parents = {spec.key: tuple(dep.asset_key for dep in spec.deps) for spec in specs}
        children: dict[AssetKey, list[AssetKey]] = {key: [] for key in parents}
        for key, ups in parents.items():
            for parent in ups:
                children.setdefault(parent, []).append(key)
        sources = frozenset(spec.key for spec in specs if defs.resolve_assets_def(spec.key).is_observable)
        return cls(
            parents=parents,
            code_versions={spec.key: spec.code_version for spec in specs},
            sources=sources,
            children={key: tuple(sorted(kids, key=AssetKey.to_user_string)) for key, kids in children.items()},
        )

    @property
    def materializable(self) -> list[AssetKey]:
        return sorted((key for key in self.parents if key not in self.sources), key=AssetKey.to_user_string)

    def toposorted(self) -> list[AssetKey]:
        """Every asset, parents before children (ties in key order)."""
        done: list[AssetKey] = []
        placed: set[AssetKey] = set()
        pending = sorted(self.parents, key=AssetKey.to_user_string)
        while pending:
            ready = [key for key in pending if all(p in placed or p not in self.parents for p in self.parents[key])]
            if not ready:
                raise ValueError("the asset graph has a cycle")
            done += ready
            placed.update(ready)
            pending = [key for key in pending if key not in placed]
        return done

    def with_descendants(self, roots: Iterable[AssetKey]) -> set[AssetKey]:
        closure: set[AssetKey] = set()
        queue = deque(roots)
        while queue:
            key = queue.popleft()
            if key in closure:
                continue
            closure.add(key)
            queue.extend(self.children.get(key, ()))
        return closure


@dataclass(frozen=True)
class RefreshPlan:
    """Sources whose data changed, why each stale or missing asset is so, and the stale closure."""

    changed_sources: dict[AssetKey, list[str]]
    reasons: dict[AssetKey, list[str]]
    closure: list[AssetKey]


def _graph(defs: Definitions | DependencyGraph) -> DependencyGraph:
    return defs if isinstance(defs, DependencyGraph) else DependencyGraph.of(defs)


def plan_refresh(
    instance: DagsterInstance,
    defs: Definitions | DependencyGraph,
    observed: Mapping[AssetKey, str] | None = None,
) -> RefreshPlan:
    """Read the instance once: every asset's latest materialisation, every source's latest observation.

    ``observed`` overrides the sources' recorded data versions with ones just computed (a dry run
    that records nothing).
    """
    graph = _graph(defs)
    events = {key: instance.get_latest_materialization_event(key) for key in graph.materializable}
    tags: dict[AssetKey, dict[str, str]] = {
        key: dict(event.asset_materialization.tags or {})
        for key, event in events.items()
        if event is not None and event.asset_materialization is not None
    }
    current: dict[AssetKey, str | None] = {
        key: (observed or {}).get(key) or latest_observed_version(instance, key) for key in graph.sources
    }
    current |= {key: tags.get(key, {}).get(DATA_VERSION_TAG) for key in graph.materializable}

    reasons: dict[AssetKey, list[str]] = {}
    changed: dict[AssetKey, list[str]] = {}
    for key in graph.materializable:
        if key not in tags:
            reasons[key] = [MISSING]
            continue
        recorded = tags[key]
        if CODE_VERSION_TAG not in recorded:
            # No provenance (an event reported from outside a run): as Dagster does, only an upstream
            # asset materialised after it makes it stale.
            why = [
                f"upstream {parent.to_user_string()} materialised since"
                for parent in graph.parents[key]
                if parent not in graph.sources
                and (parent_event := events.get(parent)) is not None
                and parent_event.timestamp > events[key].timestamp  # type: ignore[union-attr]
            ]
        else:
            why = _stale_causes(graph, key, recorded, current, changed)
        if why:
            reasons[key] = why
    closure = sorted(graph.with_descendants(reasons), key=AssetKey.to_user_string)
    return RefreshPlan(changed_sources=changed, reasons=reasons, closure=closure)


def _stale_causes(
    graph: DependencyGraph,
    key: AssetKey,
    recorded: Mapping[str, str],
    current: Mapping[AssetKey, str | None],
    changed: dict[AssetKey, list[str]],
) -> list[str]:
    """Dagster's stale causes of one materialisation with provenance: code, data, dependencies."""
    why = []
    code = graph.code_versions.get(key)
    if code is not None and recorded.get(CODE_VERSION_TAG) != code:
        why.append(f"code version changed: {_short(recorded.get(CODE_VERSION_TAG))} -> {_short(code)}")
    read = {
        tag[len(INPUT_DATA_VERSION_PREFIX) :]: value
        for tag, value in recorded.items()
        if tag.startswith(INPUT_DATA_VERSION_PREFIX)
    }
    for parent in graph.parents[key]:
        name, now = parent.to_user_string(), current.get(parent)
        if name not in read:
            why.append(f"new dependency: {name}")
        elif now is not None and read[name] != now:
            kind = "observed data version" if parent in graph.sources else "data version"
            why.append(f"{kind} of {name} changed: {_short(read[name])} -> {_short(now)}")
            if parent in graph.sources:
                changed.setdefault(parent, []).append(
                    f"data version {_short(read[name])} -> {_short(now)} since {key.to_user_string()} read it"
                )
    names = {parent.to_user_string() for parent in graph.parents[key]}
    return why + [f"dependency removed: {name}" for name in sorted(set(read) - names)]


def stale_or_missing(instance: DagsterInstance, defs: Definitions | DependencyGraph) -> dict[AssetKey, list[str]]:
    """Every stale or missing asset with its reasons (the roots of the stale closure)."""
    return plan_refresh(instance, defs).reasons


stale_reasons = stale_or_missing


def changed_sources(instance: DagsterInstance, defs: Definitions | DependencyGraph) -> dict[AssetKey, list[str]]:
    """Sources whose latest observation differs from what an asset read from them."""
    return plan_refresh(instance, defs).changed_sources


def stale_closure(instance: DagsterInstance, defs: Definitions | DependencyGraph) -> list[AssetKey]:
    """Every stale or missing asset plus all of its descendants, in a stable order."""
    return plan_refresh(instance, defs).closure


def latest_data_version(instance: DagsterInstance, key: AssetKey, source: bool = False) -> str | None:
    return latest_observed_version(instance, key) if source else latest_materialized_version(instance, key)


def unrecorded_sources(instance: DagsterInstance, versions: Mapping[AssetKey, str]) -> list[AssetKey]:
    """The sources whose data version (just computed) differs from their latest recorded observation."""
    return sorted(
        (key for key, version in versions.items() if latest_observed_version(instance, key) != version),
        key=AssetKey.to_user_string,
    )


def observe_sources(
    defs: Definitions, instance: DagsterInstance, keys: Iterable[AssetKey] | None = None, run: Any = None
) -> Any:
    """Observe sources (all, or ``keys``) in one in-process run of ``observe_sources``; ``None`` if none.

    ``run(job, instance, **kwargs)`` launches the job (the command line passes its own runner); by
    default ``execute_in_process``. A failed observation (a task file gone) raises.
    """
    selection = sorted(DependencyGraph.of(defs).sources if keys is None else keys, key=AssetKey.to_user_string)
    if not selection:
        return None
    job = defs.resolve_job_def(OBSERVE_SOURCES)
    if run is None:
        result = job.execute_in_process(instance=instance, asset_selection=selection, raise_on_error=True)
    else:
        result = run(job, instance, asset_selection=selection)
    if not result.success:
        raise RuntimeError(f"observing the sources failed (run {result.run_id})")
    return result
