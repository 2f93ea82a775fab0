"""Which assets write which warehouse table: how SQL models over those tables get their upstream assets.

The Python stages share tables (every ``s2_generations`` asset writes rows of ``generations``), so a
SQL model that reads a table depends on every asset that writes it. A new stage that writes a table
adds its stage name here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dagster import AssetKey

from s2d_assets.warehouse import SCHEMA

# every table of the warehouse schema, whether or not the experiment at hand writes it
WAREHOUSE_TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))

# stage name (the last part of an asset key) -> the warehouse tables that stage writes
STAGE_TABLES: dict[str, tuple[str, ...]] = {
    "raw_inputs": ("inputs",),
    "perturbed_inputs": ("perturbed_inputs",),
    "s1_generations": ("generations", "llm_cache"),
    "s2_generations": ("generations", "llm_cache"),
    "curated_pool": ("curated_pool",),
    "distillation_set": ("distillation_set",),
    "evaluation": ("generations", "evaluations", "llm_cache"),
}


def table_producers(keys: Iterable[AssetKey]) -> dict[str, list[AssetKey]]:
    """Warehouse table -> the assets (among ``keys``) that write it, in key order."""
    producers: dict[str, list[AssetKey]] = {}
    for key in sorted(keys, key=lambda k: k.path):
        for table in STAGE_TABLES.get(key.path[-1], ()):
            producers.setdefault(table, []).append(key)
    return producers
