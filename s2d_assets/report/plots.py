"""Pictures for the Dagster UI: accuracy against generated tokens, one point per system (error bars over seeds)."""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from typing import Any

from s2d_assets.core.stage_result import StageResult, markdown_image
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.replicates import replicate_names

SYSTEM_STYLE = {
    "system1": ("System 1", "#1f77b4"),
    "system2": ("System 2", "#d62728"),
    "distilled": ("Distilled System 1", "#2ca02c"),
}


def summarise_systems(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system (in ``SYSTEM_STYLE`` order, then first seen): mean and sample standard deviation of
    accuracy (%) and of mean tokens over the rows (one per seed) that have a score, and the number of seeds."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("accuracy") is not None:  # an untrained distilled row has no score
            grouped.setdefault(row["system"], []).append(row)
    order = [s for s in SYSTEM_STYLE if s in grouped] + [s for s in grouped if s not in SYSTEM_STYLE]
    summary = []
    for system in order:
        accuracies = [100 * float(r["accuracy"]) for r in grouped[system]]
        tokens = [float(r["mean_tokens"]) for r in grouped[system]]
        summary.append(
            {
                "system": system,
                "seeds": len(accuracies),
                "accuracy": statistics.fmean(accuracies),
                "accuracy_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "tokens": statistics.fmean(tokens),
                "tokens_sd": statistics.stdev(tokens) if len(tokens) > 1 else 0.0,
            }
        )
    return summary


def accuracy_tokens_png(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Accuracy (%) against mean generated tokens per item, one point per system; ``rows`` are
    evaluations rows, one per system and seed. With several seeds a point is the mean, and its
    error bars one standard deviation over the seeds."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.4), dpi=100)
    points = summarise_systems(rows)
    for point in points:
        label, colour = SYSTEM_STYLE.get(point["system"], (point["system"], "#7f7f7f"))
        x, y = point["tokens"], point["accuracy"]
        if point["seeds"] > 1:
            label = f"{label} (mean ± sd, {point['seeds']} seeds)"
            axes.errorbar(
                [x],
                [y],
                xerr=[point["tokens_sd"]],
                yerr=[point["accuracy_sd"]],
                fmt="none",
                ecolor=colour,
                capsize=4,
                zorder=2,
            )
        axes.scatter([x], [y], s=70, color=colour, label=label, zorder=3)
        text = f"{y:.0f}%" if point["seeds"] == 1 else f"{y:.0f}±{point['accuracy_sd']:.0f}%"
        axes.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    axes.set_xlabel("generated tokens per item (all steps)")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-5, 105)
    axes.set_xlim(0, 1.2 * max([p["tokens"] + p["tokens_sd"] for p in points], default=1.0) + 1)
    axes.grid(alpha=0.3)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def plot_evaluation(ctx: StageContext, task: str, method: str, result: StageResult) -> None:
    """The evaluation stage's picture: accuracy against tokens, with error bars over the seeds when there
    are several, added to ``result``'s markdown (the stage's ``after`` hook, ``defs/stage_assets.py``)."""
    names = replicate_names(ctx)
    rows = ctx.warehouse.query(
        "SELECT experiment, system, accuracy, mean_tokens FROM evaluations "
        "WHERE list_contains(?, experiment) AND task = ? AND method = ?",
        [names, task, method],
    ).to_dicts()
    png = accuracy_tokens_png(rows, f"{task} / {method}" + (f" ({len(names)} seeds)" if len(names) > 1 else ""))
    result.markdown["accuracy_vs_tokens"] = markdown_image(png, "accuracy against generated tokens")
