"""Paired gaps, their standard error and the "> 2 se" mark, on cases worked out by hand.

se of a paired gap = max(item se, seed se): item se = sample sd of the per-item differences / sqrt(n),
seed se = sample sd of the per-seed mean differences / sqrt(seeds); in accuracy points (x 100).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.report.results_blocks import gap_text, kept_text, paired_gap, sweep_block, taught_text
from s2d_assets.report.results_data import Cell, ExperimentResults, Source, TaskMethod

MARK = "**(> 2 se)**"


def cell(correct: Sequence[int] | dict[int, Sequence[int]], tokens: float = 4.0) -> Cell:
    """A cell with items ``i0, i1, ...`` per seed (a list: one seed, seed 0)."""
    per_seed = correct if isinstance(correct, dict) else {0: correct}
    built = Cell()
    for seed, values in per_seed.items():
        for index, value in enumerate(values):
            built.per_seed.setdefault(seed, []).append(bool(value))
            built.by_item[(seed, f"i{index}")] = bool(value)
            built.tokens.append(tokens)
            built.answers["yes" if value else "no"] += 1
            built.reading.add(True, bool(value), "stop")
    return built


def test_one_seed_gap_and_its_item_standard_error() -> None:
    # diffs [1, 1, 0, 0]: mean 0.5; deviations ±0.5, sum of squares 1, variance 1/3, sd 0.57735;
    # se = 0.57735 / sqrt(4) = 0.288675 -> 28.9 points. 50.0 < 2 x 28.9 = 57.7: no mark.
    gap = paired_gap(cell([1, 1, 1, 0]), cell([0, 0, 1, 0]))
    assert gap is not None
    assert (gap.mean, gap.n, gap.per_seed) == (50.0, 4, (50.0,))
    assert gap.item_se == pytest.approx(28.8675, abs=1e-4) and gap.seed_se == 0.0
    assert gap_text(gap) == "+50.0 ± 28.9"


def test_a_gap_beyond_two_standard_errors_is_marked_either_way() -> None:
    # diffs [1]*6 + [0, 0]: mean 0.75; deviations 0.25 (x6) and -0.75 (x2): sum of squares
    # 6 x 0.0625 + 2 x 0.5625 = 1.5, variance 1.5 / 7 = 0.2142857, sd 0.46291, se 0.46291 / sqrt(8)
    # = 0.163663 -> 16.4 points. 75.0 > 2 x 16.4 = 32.7: marked.
    better, worse = cell([1] * 8), cell([0] * 6 + [1, 1])
    gap = paired_gap(better, worse)
    assert gap is not None and gap.se == pytest.approx(16.3663, abs=1e-4)
    assert gap_text(gap) == f"+75.0 ± 16.4 {MARK}"
    assert gap_text(paired_gap(worse, better)) == f"-75.0 ± 16.4 {MARK}"


def test_the_seed_standard_error_counts_when_seeds_disagree() -> None:
    # Seed 0: diffs [1, 1, 1, 1] (+100), seed 1: [0, 0, 0, 0] (+0). Pooled mean 0.5 -> +50.0.
    # item se: 8 diffs, four 1 and four 0: variance 8 x 0.25 / 7 = 0.285714, sd 0.534522,
    # se 0.534522 / sqrt(8) = 0.188982 -> 18.9 (alone it would mark: 50.0 > 37.8).
    # seed se: sd of (100, 0) = 70.7107, / sqrt(2) = 50.0 -> se = 50.0; 50.0 < 100.0: no mark.
    gap = paired_gap(cell({0: [1] * 4, 1: [0] * 4}), cell({0: [0] * 4, 1: [0] * 4}))
    assert gap is not None
    assert gap.item_se == pytest.approx(18.8982, abs=1e-4) and gap.seed_se == pytest.approx(50.0)
    assert gap.se == pytest.approx(50.0)
    assert gap_text(gap) == "+50.0 ± 50.0"
    assert gap_text(gap, per_seed=True) == "+50.0 ± 50.0 (seeds: +100.0, +0.0)"


def test_no_spread_and_unpaired_items() -> None:
    # Every item moved the same way: sd 0, so se 0, and a +100 gap is beyond any two standard errors.
    assert gap_text(paired_gap(cell([1, 1, 1]), cell([0, 0, 0]))) == f"+100.0 ± 0.0 {MARK}"
    # No difference at all: never marked.
    assert gap_text(paired_gap(cell([1, 0, 1]), cell([1, 0, 1]))) == "+0.0 ± 0.0"
    # Only the items both systems answered are paired: a's extra items (i2, i3) are left out.
    gap = paired_gap(cell([1, 1, 1, 1]), cell([0, 1]))
    assert gap is not None and (gap.n, gap.mean) == (2, 50.0)
    # Fewer than two shared items: no gap.
    assert paired_gap(cell([1]), cell([0])) is None and gap_text(None) == "—"


def test_the_sweep_table_row(tmp_path: Path) -> None:
    experiment = parse_experiment(
        {
            "name": "sweepcase",
            "tasks": {"coin": {"kind": "coin_flip", "train_size": 2, "eval_size": 8}},
            "methods": {"rar": {"kind": "rar_1step"}},
        }
    )
    row = TaskMethod("coin", "coin_flip", "rar", "rar_1step", "coin_flip, 8 eval")
    row.cells = {"system1": cell([0] * 6 + [1, 1], tokens=2.0), "system2": cell([1] * 8, tokens=40.0)}
    row.majority = {0: 50.0}
    results = ExperimentResults(Source(tmp_path / "sweepcase.yaml", experiment), False, [row], [0])
    line = next(line for line in sweep_block([results]).splitlines() if line.startswith("| sweepcase |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # System 1: 2 of 8 = 25.0%, binomial se sqrt(0.25 x 0.75 / 8) = 0.153093 -> 15.3; System 2: 8 of 8.
    assert cells[3:6] == ["8 (1 seed)", "25.0 ± 15.3", "100.0 ± 0.0"]
    assert cells[6:9] == ["100.0% of 8", "100.0% → 100.0%", "0.0% → 0.0%"]  # on parsed, parsed, truncated
    assert cells[9] == f"+75.0 ± 16.4 {MARK}"  # the second case above
    assert cells[10:12] == ["2 → 40", "50.0"]


def test_the_share_of_the_gain_kept_by_distillation() -> None:
    system1, system2 = cell([0] * 8), cell([1] * 8)  # gain +100.0 ± 0.0, beyond two standard errors
    # distilled right on 6 of 8 where System 1 was wrong: +75.0 of +100.0 -> 75 %.
    assert kept_text(paired_gap(system2, system1), paired_gap(cell([1] * 6 + [0, 0]), system1)) == "75%"
    # A gain within two standard errors has no share: the ratio would be one of noise.
    noise = paired_gap(cell([1, 1, 1, 0]), cell([0, 0, 1, 0]))  # +50.0 ± 28.9
    assert kept_text(noise, paired_gap(cell([1, 1, 1, 1]), cell([0, 0, 1, 0]))) == "—"
    assert kept_text(paired_gap(system1, system2), None) == "—"  # a loss, and no distilled row


def test_a_taught_system_2_is_labelled_as_not_the_papers_setting() -> None:
    from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, load_experiment

    text = taught_text(load_experiment(DEFAULT_EXPERIMENT).model.teach)
    assert text.startswith("**A taught System 2, not the paper's prompted setting.**")
    assert "`coin_flip_2`: coin_flip, people 2, 48 inputs" in text and "lora, 2 epochs" in text
