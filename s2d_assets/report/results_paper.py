"""The paper block of docs/results.md: this repository's rows beside the figures the paper states (its Table 1)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from s2d_assets.report.results_blocks import SYSTEM_LABEL, mean_sd, table_lines
from s2d_assets.report.results_data import SYSTEMS, ExperimentResults

PAPER_MODEL = "Llama-2-70B-chat"
# Table 1 (Rephrase and Respond), as published: System 1 zero-shot, RaR 1-step, RaR 2-step, distilled 2-step RaR.
PAPER_FIGURES: dict[tuple[str, str, str], str] = {
    ("last_letter", "rar_1step", "system1"): "30.0% (the paper's Table 1: System 1)",
    ("last_letter", "rar_2step", "system1"): "30.0% (the paper's Table 1: System 1)",
    ("last_letter", "rar_1step", "system2"): "39.5% (the paper's Table 1: RaR 1-step)",
    ("last_letter", "rar_2step", "system2"): "44.5% (the paper's Table 1: RaR 2-step)",
    ("last_letter", "rar_2step", "distilled"): "98.0% (the paper's Table 1: distilled 2-step RaR)",
    ("coin_flip", "rar_1step", "system1"): "56.1% (the paper's Table 1: System 1)",
    ("coin_flip", "rar_2step", "system1"): "56.1% (the paper's Table 1: System 1)",
    ("coin_flip", "rar_1step", "system2"): "58.5% (the paper's Table 1: RaR 1-step)",
    ("coin_flip", "rar_2step", "system2"): "77.2% (the paper's Table 1: RaR 2-step)",
    ("coin_flip", "rar_2step", "distilled"): "75.69% (the paper's Table 1: distilled 2-step RaR)",
}
PAPER_TABLES: dict[tuple[str, str], str] = {
    ("last_letter", "rar"): "see paper Table 1 (Rephrase and Respond)",
    ("coin_flip", "rar"): "see paper Table 1 (Rephrase and Respond)",
    ("last_letter", "system1"): "see paper Table 1 (Rephrase and Respond)",
    ("coin_flip", "system1"): "see paper Table 1 (Rephrase and Respond)",
    ("coin_flip", "cot"): "no CoT cell: the paper distils RaR on coin flip (Table 1: System 1 56.1%, RaR 2-step "
    "77.2%, distilled 75.69%)",
    ("factual_qa", "s2a"): "see the paper's S2A results (TriviaQA with injected opinions, biased and unbiased)",
    ("sycophancy", "s2a"): "not in the paper (its S2A setting is factual QA with injected opinions)",
    ("pairwise_judging", "bsm"): "see the paper's BSM results (OASST2 and MT-bench judging)",
    ("gsm8k", "cot"): "see the paper's GSM8K results: CoT could not be distilled well",
}


# -- numbers as text -------------------------------------------------------------------------------------


def paper_block(results: Sequence[ExperimentResults]) -> str:
    body = []
    for result in results:
        for row in result.rows:
            for system in SYSTEMS:
                cell = row.cells.get(system)
                # A sweep's rows only where the paper states a figure for the same task, method and system.
                if cell is None or not (result.full or (row.task_kind, row.method_kind, system) in PAPER_FIGURES):
                    continue
                body.append(
                    [
                        f"{result.source.experiment.name}",
                        row.task,
                        row.method,
                        SYSTEM_LABEL[system],
                        mean_sd(cell.accuracies()),
                        paper_cell(row.task_kind, row.method_kind, system),
                    ]
                )
    lines = [
        f"The paper distils {PAPER_MODEL}; this repository's default model is SmolLM2-135M-Instruct, about 500 "
        "times smaller, so the comparison is of direction (does System 2 beat System 1, does distillation keep "
        "it), not of level. A figure appears only where this repository cites the paper's text; otherwise the "
        "table to compare with is named.",
        "",
    ]
    lines += table_lines(["experiment", "task", "method", "system", "this run", f"paper ({PAPER_MODEL})"], body)
    return "\n".join(lines)


def paper_cell(task_kind: str, method_kind: str, system: str) -> str:
    figure = PAPER_FIGURES.get((task_kind, method_kind, system))
    if figure:
        return figure
    family = re.sub(r"_.*", "", method_kind) if system != "system1" else "system1"
    for key in ((task_kind, family), (task_kind, re.sub(r"_.*", "", method_kind))):
        if key in PAPER_TABLES:
            return PAPER_TABLES[key]
    return "no corresponding cell in the paper"
