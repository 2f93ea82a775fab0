"""Which assets write which warehouse table: how SQL models over those tables get their upstream assets.

The Python stages share tables (every ``s2_generations`` asset writes rows of ``generations``), so a
SQL model that reads a table depends on every asset that writes it. Each asset declares the tables it
writes in its definition metadata (``TABLES_METADATA``, from ``Stage.tables`` in its stage table), so
what it writes never depends on its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dagster import AssetKey, AssetsDefinition

from s2d_assets.core.warehouse import SCHEMA
from s2d_assets.defs.common import TABLES_METADATA

# every table of the warehouse schema, whether or not the experiment at hand writes it
WAREHOUSE_TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))


def table_producers(assets: Iterable[AssetsDefinition]) -> dict[str, list[AssetKey]]:
    """Warehouse table -> the assets (among ``assets``) that declare they write it, in key order."""
    declared = {key: asset.metadata_by_key[key].get(TABLES_METADATA) for asset in assets for key in asset.keys}
    producers: dict[str, list[AssetKey]] = {}
    for key in sorted(declared, key=lambda k: k.path):
        for table in declared[key].value if declared[key] is not None else ():
            producers.setdefault(table, []).append(key)
    return producers
