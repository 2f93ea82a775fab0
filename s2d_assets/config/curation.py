"""The curation section and the curation filter registry: each filter's traits, and where it is implemented.

A filter's traits are what the rest of the pipeline asks of it, stated once here: whether it reads the
perturbed variants' answers (the experiment then needs tasks with perturbations) and whether the base
model decides (curation then calls the engine). Its implementation (``distill/votes.py``'s
``CurationFilter``) is named by its import path, so config imports nothing above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from s2d_assets.config.base import Strict
from s2d_assets.config.registry import Registry


@dataclass(frozen=True)
class FilterTraits:
    needs_variants: bool = False  # votes over every perturbed variant's answers, mapped back to the original
    calls_base_model: bool = False  # the base model decides (curation calls the engine)


CURATION_FILTERS: Registry[Any] = Registry("curation filter")
CURATION_FILTERS.register("s2d_assets.distill.votes:SELF_CONSISTENCY", kind="self_consistency", traits=FilterTraits())
CURATION_FILTERS.register(
    "s2d_assets.distill.votes:PERTURBATION", kind="perturbation", traits=FilterTraits(needs_variants=True)
)
CURATION_FILTERS.register(
    "s2d_assets.distill.votes:COMBINED", kind="combined", traits=FilterTraits(needs_variants=True)
)
CURATION_FILTERS.register("s2d_assets.distill.curate:USC", kind="usc", traits=FilterTraits(calls_base_model=True))
CURATION_FILTERS.register("s2d_assets.distill.votes:FIRST_SAMPLE", kind="none", traits=FilterTraits())


class CurationSpec(Strict):
    """Output self-consistency: keep an input's plurality answer (the published rule), optionally above a threshold."""

    min_agreement: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="0 = the published plurality vote (the unique most common answer is kept); above 0, an extra "
        "threshold on the winner's vote share (an option, recorded in the pool's metadata)",
    )
    unparsed: Literal["ignore", "count"] = Field(
        "ignore",
        description="ignore: a vote share is over the samples that gave an answer (self-consistency votes over "
        "answers); count: every sample is in N, an unparsed one votes for nothing",
    )
    filter: str = Field(
        "self_consistency",
        description="self_consistency: output majority; perturbation: mapped-back answers agree across the "
        "task's perturbed variants; combined: both; usc: the model picks the most consistent sample "
        "(free-form answers); none: the first sample, unfiltered (ablation)",
    )

    @field_validator("filter")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in CURATION_FILTERS:
            raise ValueError(f"unknown curation filter {value!r}; known: {sorted(CURATION_FILTERS)}")
        return value
