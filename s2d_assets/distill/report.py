"""Pictures for the Dagster UI: accuracy against generated tokens, one point per system."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

SYSTEM_STYLE = {
    "system1": ("System 1", "#1f77b4"),
    "system2": ("System 2", "#d62728"),
    "distilled": ("Distilled System 1", "#2ca02c"),
}


def accuracy_tokens_png(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Scatter of accuracy (%) against mean generated tokens per item; ``rows`` are evaluations rows."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.4), dpi=100)
    for row in rows:
        label, colour = SYSTEM_STYLE.get(row["system"], (row["system"], "#7f7f7f"))
        x, y = float(row["mean_tokens"]), 100 * float(row["accuracy"])
        axes.scatter([x], [y], s=70, color=colour, label=label, zorder=3)
        axes.annotate(f"{y:.0f}%", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.set_xlabel("generated tokens per item (all steps)")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-5, 105)
    axes.set_xlim(0, 1.2 * max([float(row["mean_tokens"]) for row in rows], default=1.0) + 1)
    axes.grid(alpha=0.3)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
