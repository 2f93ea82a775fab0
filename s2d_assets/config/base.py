"""The base of every section of the experiment file: strict, frozen, finite."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys, mutation and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
