"""Dagster resources: the warehouse for SQL models (the stages use the experiment's ``StageContext``)."""

from pathlib import Path

from dagster import ConfigurableResource

from s2d_assets.core.warehouse import Warehouse


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file; connections are opened per write, never held."""

    path: str

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path))
