"""What an asset was built from, read back from Dagster's materialisation history (public API).

Every materialisation records, per parent, the event it read (``dagster/input_event_pointer/<parent>``)
and that event's data version (``dagster/input_data_version/<parent>``). Following the pointers
from an asset's latest materialisation gives the exact versions it was built from, down to the
source observations (the files), for a dataset card or a model card.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, EventLogRecord

from s2d_assets.defs.common import CODE_VERSION_TAG, DATA_VERSION_TAG, INPUT_EVENT_POINTER_PREFIX
from s2d_assets.defs.stage_assets import STAGES

# stage name -> the metadata a card copies from its latest materialisation (the pool's curation filter)
CARD_METADATA = {stage.name: stage.card_metadata for stage in STAGES if stage.card_metadata}


@dataclass
class Provenance:
    lineage: list[dict[str, Any]] = field(default_factory=list)  # the asset first, then upstream, nearest first
    curation: dict[str, Any] = field(default_factory=dict)  # the pool's filter, from its metadata


def _record(instance: DagsterInstance, key: AssetKey, storage_id: int | None) -> EventLogRecord | None:
    records_filter = AssetRecordsFilter(asset_key=key, storage_ids=[storage_id] if storage_id is not None else None)
    for fetch in (instance.fetch_materializations, instance.fetch_observations):
        records = fetch(records_filter, limit=1).records
        if records:
            return records[0]
    return None


def provenance(instance: DagsterInstance, key: AssetKey) -> Provenance:
    """The asset's latest materialisation and, through the input pointers, everything it was built from."""
    found = Provenance()
    queue: deque[tuple[AssetKey, int | None]] = deque([(key, None)])
    seen: set[AssetKey] = set()
    while queue:
        current, storage_id = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        record = _record(instance, current, storage_id)
        if record is None:
            continue
        entry = record.event_log_entry
        event = entry.asset_materialization or entry.asset_observation
        tags = dict(event.tags or {}) if event else {}
        found.lineage.append(
            {
                "asset": current.to_user_string(),
                "event": "observation"
                if entry.dagster_event_type == DagsterEventType.ASSET_OBSERVATION
                else "materialization",
                "data_version": tags.get(DATA_VERSION_TAG),
                "code_version": tags.get(CODE_VERSION_TAG),
                "run_id": entry.run_id or None,
                "timestamp": datetime.fromtimestamp(entry.timestamp, UTC).isoformat(timespec="seconds"),
            }
        )
        card_fields = CARD_METADATA.get(current.path[-1], ())
        if card_fields and event is not None and not found.curation:
            metadata = event.metadata or {}
            found.curation = {name: metadata[name].value for name in card_fields if name in metadata}
        for tag, value in sorted(tags.items()):
            if tag.startswith(INPUT_EVENT_POINTER_PREFIX):
                parent = AssetKey.from_user_string(tag[len(INPUT_EVENT_POINTER_PREFIX) :])
                queue.append((parent, int(value)))
    return found
