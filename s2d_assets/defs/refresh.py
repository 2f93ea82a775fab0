"""The stale closure: what a refresh must materialise so that everything is up to date again.

Dagster marks an asset stale when its code version or an upstream data version changed since
its last materialisation, but not when only a grand-parent changed: staleness is not
transitive. A refresh therefore takes every stale or missing asset *and everything downstream
of it*, and materialises that set in one run. Downstream assets whose inputs come back
identical cost nothing more than a cache lookup.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from dagster import AssetKey, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView  # no public constructor for these
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.temporal_context import TemporalContext
from dagster._time import get_current_datetime


def stale_status_resolver(instance: DagsterInstance, asset_graph: BaseAssetGraph) -> CachingStaleStatusResolver:
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def stale_or_missing(instance: DagsterInstance, asset_graph: BaseAssetGraph) -> dict[AssetKey, StaleStatus]:
    resolver = stale_status_resolver(instance, asset_graph)
    statuses = {key: resolver.get_status(key) for key in asset_graph.materializable_asset_keys}
    return {key: status for key, status in statuses.items() if status != StaleStatus.FRESH}


def with_descendants(asset_graph: BaseAssetGraph, roots: Iterable[AssetKey]) -> set[AssetKey]:
    closure: set[AssetKey] = set()
    queue = deque(roots)
    while queue:
        key = queue.popleft()
        if key in closure:
            continue
        closure.add(key)
        queue.extend(asset_graph.get(key).child_keys)
    return closure


def stale_closure(instance: DagsterInstance, asset_graph: BaseAssetGraph) -> list[AssetKey]:
    """Every stale or missing asset plus all of its descendants, in a stable order."""
    closure = with_descendants(asset_graph, stale_or_missing(instance, asset_graph))
    return sorted(closure, key=lambda key: key.to_user_string())


def stale_reasons(instance: DagsterInstance, asset_graph: BaseAssetGraph) -> dict[AssetKey, list[str]]:
    """Why each asset is stale, in Dagster's words (code version changed, new upstream data, ...)."""
    resolver = stale_status_resolver(instance, asset_graph)
    return {
        key: [f"{cause.category.name.lower()}: {cause.reason}" for cause in resolver.get_stale_root_causes(key)]
        for key in stale_or_missing(instance, asset_graph)
    }
