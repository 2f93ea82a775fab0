"""Taking a curated pool or a distillation set out of the platform: Parquet, JSONL or a `datasets` folder.

The rows are read from the warehouse's read snapshot exactly as DuckDB holds them (every column,
ordered by input id) and written with polars (``data.parquet``, ``data.jsonl``) or as a Hugging
Face ``datasets`` folder (``Dataset.from_polars(...).save_to_disk``). Next to them goes a dataset
card (``README.md``): the experiment, task and method, the curation filter, the counts, and the
lineage the caller gathered (the data versions the pool was built from). Plain Python: the
Dagster layer supplies the lineage (``defs/lineage.py``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from s2d_assets.core.atomic import atomic_write_text
from s2d_assets.core.errors import UserError
from s2d_assets.core.warehouse import Warehouse

EXPORTABLE = ("curated_pool", "distillation_set")
FORMATS = ("parquet", "jsonl", "hf")
CARD = "README.md"
FILES = {"parquet": "data.parquet", "jsonl": "data.jsonl"}


class ExportError(UserError):
    """A pool that cannot be exported as asked (unknown name, no rows, a bad format)."""


@dataclass(frozen=True)
class PoolRef:
    """``<experiment>/<task>/<method>/<curated_pool|distillation_set>``: the asset key of a pool, as text."""

    experiment: str
    task: str
    method: str
    stage: str

    @classmethod
    def parse(cls, text: str) -> PoolRef:
        parts = [part for part in text.strip().strip("/").split("/") if part]
        if len(parts) != 4 or parts[3] not in EXPORTABLE:
            raise ExportError(
                f"{text!r}: name a pool as <experiment>/<task>/<method>/<stage> with stage one of "
                f"{', '.join(EXPORTABLE)} (e.g. default/coin_flip/rar_1step/curated_pool)"
            )
        return cls(*parts)

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.experiment, self.task, self.method, self.stage)

    def __str__(self) -> str:
        return "/".join(self.parts)


def read_pool(warehouse_path: Path, ref: PoolRef) -> pl.DataFrame:
    """Every row of the pool, as the warehouse holds it, from the read snapshot (never blocks a run).

    A distillation set may be empty (the filter kept nothing); a pool that was never judged is an error.
    """
    snapshot = Warehouse(warehouse_path).read_snapshot()
    with duckdb.connect(str(snapshot), read_only=True) as con:
        where = "WHERE experiment = ? AND task = ? AND method = ?"
        params = [ref.experiment, ref.task, ref.method]
        frame = con.sql(f"SELECT * FROM {ref.stage} {where} ORDER BY input_id", params=params).pl()
        judged = con.sql(f"SELECT count(*) FROM curated_pool {where}", params=params).fetchall()[0][0]
    if frame.height == 0 and not judged:  # an empty set of a judged pool is exported as such
        raise ExportError(
            f"{ref}: the warehouse has no pool for experiment {ref.experiment!r}, task {ref.task!r}, method "
            f"{ref.method!r}; check the name, or materialise it first (s2d run)"
        )
    return frame


def counts(frame: pl.DataFrame) -> dict[str, int]:
    found = {"rows": frame.height}
    if "kept" in frame.columns:
        found["kept"] = int(frame["kept"].sum())
    return found


def dataset_card(
    ref: PoolRef,
    frame: pl.DataFrame,
    fmt: str,
    curation: Mapping[str, Any] | None,
    lineage: Sequence[Mapping[str, Any]],
) -> str:
    """A dataset card: YAML front matter (what the Hugging Face hub reads), then the provenance in prose."""
    found = counts(frame)
    what = "curated pool (every train input, kept or not, with votes and reason)"
    if ref.stage == "distillation_set":
        what = "distillation set (System 1 prompt -> kept final answer, no intermediate tokens)"
    lines = [
        "---",
        f"pretty_name: {ref.experiment} {ref.task} {ref.method} {ref.stage}",
        "tags:",
        "- system-2-distillation",
        "- self-consistency",
        "---",
        "",
        f"# {ref}",
        "",
        f"The {what} of method `{ref.method}` on task `{ref.task}`, experiment `{ref.experiment}`, "
        "exported by s2d (System 2 distillation, Yu et al., 2024, arXiv 2407.06023).",
        "",
        "| field | value |",
        "|---|---|",
        f"| experiment | `{ref.experiment}` |",
        f"| task | `{ref.task}` |",
        f"| method | `{ref.method}` |",
        f"| stage | `{ref.stage}` |",
        f"| format | `{fmt}` |",
        *(f"| {name} | {value} |" for name, value in found.items()),
        f"| columns | {', '.join(f'`{c}`' for c in frame.columns)} |",
        "",
        "## Curation filter",
        "",
    ]
    if curation:
        lines += [
            f"- `{name}`: {json.dumps(value) if not isinstance(value, str) else value}"
            for name, value in curation.items()
        ]
    else:
        lines.append("(not recorded)")
    lines += [
        "",
        "## Lineage",
        "",
        "The data versions this export was built from (from Dagster's materialisation history):",
        "",
    ]
    if lineage:
        lines += ["| asset | data version | code version | run | recorded at |", "|---|---|---|---|---|"]
        for entry in lineage:
            lines.append(
                f"| `{entry.get('asset', '')}` | `{entry.get('data_version') or ''}` | "
                f"`{entry.get('code_version') or ''}` | {entry.get('run_id') or ''} | {entry.get('timestamp') or ''} |"
            )
    else:
        lines.append("(no materialisation recorded)")
    return "\n".join(lines) + "\n"


def write_export(
    frame: pl.DataFrame,
    ref: PoolRef,
    fmt: str,
    out_dir: Path,
    curation: Mapping[str, Any] | None = None,
    lineage: Sequence[Mapping[str, Any]] = (),
) -> list[Path]:
    """Write the rows in ``fmt`` and the dataset card into ``out_dir`` (replacing an earlier export there)."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt == "hf":
        from datasets import Dataset

        staging = out_dir / ".hf-staging"
        shutil.rmtree(staging, ignore_errors=True)
        Dataset.from_polars(frame).save_to_disk(str(staging))
        for old in ("data-00000-of-00001.arrow", "dataset_info.json", "state.json"):
            (out_dir / old).unlink(missing_ok=True)
        for item in sorted(staging.iterdir()):
            target = out_dir / item.name
            item.replace(target)
            written.append(target)
        staging.rmdir()
    else:
        target = out_dir / FILES[fmt]
        temporary = target.with_name(target.name + ".tmp")
        if fmt == "parquet":
            frame.write_parquet(temporary)
        else:
            frame.write_ndjson(temporary)
        temporary.replace(target)
        written.append(target)
    card = out_dir / CARD
    atomic_write_text(card, dataset_card(ref, frame, fmt, curation, lineage))
    return [*written, card]
