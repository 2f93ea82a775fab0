"""Which assets write which warehouse table: how SQL models over those tables get their upstream assets.

The Python stages share tables (every ``s2_generations`` asset writes rows of ``generations``), so a
SQL model that reads a table depends on every asset that writes it. Which stage writes which table
is declared once, in the stage table (``stage_assets.STAGES``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dagster import AssetKey

from s2d_assets.core.warehouse import SCHEMA
from s2d_assets.defs.stage_assets import STAGES

# every table of the warehouse schema, whether or not the experiment at hand writes it
WAREHOUSE_TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))

# stage name (the last part of an asset key) -> the warehouse tables that stage writes
STAGE_TABLES: dict[str, tuple[str, ...]] = {stage.name: stage.tables for stage in STAGES if stage.tables}


def table_producers(keys: Iterable[AssetKey]) -> dict[str, list[AssetKey]]:
    """Warehouse table -> the assets (among ``keys``) that write it, in key order."""
    producers: dict[str, list[AssetKey]] = {}
    for key in sorted(keys, key=lambda k: k.path):
        for table in STAGE_TABLES.get(key.path[-1], ()):
            producers.setdefault(table, []).append(key)
    return producers
