"""The training loss curve for the Dagster UI: loss and learning rate per logging step."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def training_curve_png(log: Sequence[dict[str, Any]], title: str) -> bytes:
    """Training loss (left axis) and learning rate (right axis, dashed) per logging step."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    steps = [int(entry["step"]) for entry in log]
    figure, loss_axes = plt.subplots(figsize=(5, 3.4), dpi=100)
    loss_axes.plot(steps, [float(entry["loss"]) for entry in log], marker="o", markersize=3, color="#d62728")
    loss_axes.set_xlabel("optimizer step")
    loss_axes.set_ylabel("training loss", color="#d62728")
    loss_axes.grid(alpha=0.3)
    rates = [
        (step, float(entry["learning_rate"]))
        for step, entry in zip(steps, log, strict=True)
        if "learning_rate" in entry
    ]
    if rates:
        rate_axes = loss_axes.twinx()
        rate_axes.plot([s for s, _ in rates], [r for _, r in rates], linestyle="--", color="#1f77b4")
        rate_axes.set_ylabel("learning rate", color="#1f77b4")
        rate_axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    loss_axes.set_title(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
