"""First and last names from the 1990 US Census files shipped in the `names` package."""

from __future__ import annotations

import importlib.metadata
from functools import cache
from pathlib import Path


def _census_file(name: str) -> Path:
    for file in importlib.metadata.files("names") or []:
        if file.name == name:
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{name} not found in the installed 'names' package (pip install names==0.3.0)")


@cache
def _read(name: str) -> tuple[str, ...]:
    # Lines are "NAME freq cumfreq rank", most frequent first.
    rows = _census_file(name).read_text().split("\n")
    return tuple(row.split()[0].title() for row in rows if row.strip())


def first_names(limit: int) -> list[str]:
    male, female = _read("dist.male.first"), _read("dist.female.first")
    merged = [name for pair in zip(male, female, strict=False) for name in pair]
    return list(dict.fromkeys(merged))[:limit]


def last_names(limit: int) -> list[str]:
    return list(_read("dist.all.last")[:limit])
