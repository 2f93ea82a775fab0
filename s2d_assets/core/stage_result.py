"""What a stage returns, and the markdown tables and images it shows in Dagster."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass
class StageResult:
    data_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "(no rows)"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.rows()]
    return "\n".join([header, rule, *body])


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
