"""The study statistics on constructed numbers: mean and standard deviation, Student-t
quantiles, the paired t-interval, the log-linear fit and the crossover, and the report's lines."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bytelm.study.report import best_series, comparisons, crossover_lines, table
from bytelm.study.spec import Arm, Budget, Evaluation, Heldout, Study
from bytelm.study.stats import crossover, loglinear_fit, meeting_point, paired, spread, t_quantile


def test_mean_and_sample_standard_deviation():
    assert spread([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert spread([2.0]) == (2.0, None)


@pytest.mark.parametrize("df,want", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281),
                                     (30, 2.0423), (1000, 1.9623)])
def test_t_quantiles_match_the_tables(df: int, want: float):
    assert t_quantile(0.975, df) == pytest.approx(want, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-want, abs=1e-4)


def test_paired_interval_over_the_seeds_both_ran():
    a = {1: 2.0, 2: 2.2, 3: 2.1, 4: 9.9}
    b = {1: 1.9, 2: 2.0, 3: 2.05, 5: 0.0}
    result = paired(a, b)
    assert result.seeds == (1, 2, 3)
    sd = math.sqrt(((0.1 - 0.35 / 3) ** 2 + (0.2 - 0.35 / 3) ** 2 + (0.05 - 0.35 / 3) ** 2) / 2)
    half = 4.302653 * sd / math.sqrt(3)
    assert result.mean == pytest.approx(0.35 / 3)
    assert (result.low, result.high) == pytest.approx((0.35 / 3 - half, 0.35 / 3 + half), abs=1e-6)
    one = paired({1: 2.0}, {1: 1.5})
    assert one.mean == pytest.approx(0.5) and one.low is None
    assert paired({1: 2.0}, {2: 1.0}) is None


def _line(alpha: float, beta: float, cs=(1e9, 1e10, 1e11)):
    return [(c, alpha + beta * math.log10(c)) for c in cs]


def test_loglinear_fit_and_crossover():
    hybrid = loglinear_fit(_line(5.0, -0.2))
    base = loglinear_fit(_line(4.0, -0.1))
    assert (hybrid.alpha, hybrid.beta) == pytest.approx((5.0, -0.2))
    assert crossover(hybrid, base, 1e9, 1e11) == pytest.approx(1e10, rel=1e-9)
    assert crossover(hybrid, base, 1e9, 5e9) is None
    assert meeting_point(hybrid, base) == pytest.approx(1e10, rel=1e-9)
    assert meeting_point(base, loglinear_fit(_line(3.0, -0.1))) is None
    assert loglinear_fit([(1e9, 2.0), (1e9, 2.1)]) is None


def _rows(arm: str, alpha: float, beta: float, seeds=(1, 2), noise=0.01, lr=1e-3, series=None):
    rows = []
    for budget, c in ((1000, 1e9), (2000, 1e10), (4000, 1e11)):
        for k, seed in enumerate(seeds):
            rows.append({"cell": f"{arm}-{budget}-s{seed}", "arm": arm, "series": series or arm,
                         "seed": seed, "budget": budget, "lr": lr, "steps": 10, "status": "done",
                         "flops_per_byte": c / budget, "training_flops": c, "wall_s": 1.0,
                         "final_val_bpb": 2.0, "bytes": budget,
                         "test_bpb": alpha + beta * math.log10(c) + noise * (2 * k - 1)})
    return rows


def _study(arms, baseline="base") -> Study:
    return Study(name="s", path=None, question="", baseline=baseline, overrides={},
                 arms=tuple(Arm(a, None) for a in arms), evaluation=Evaluation(),
                 budgets=tuple(Budget(b, (1, 2)) for b in (1000, 2000, 4000)))


def test_report_lines_on_constructed_rows():
    rows = _rows("hyb", 5.0, -0.2) + _rows("base", 4.0, -0.1)
    study = _study(["hyb", "base"])
    lines = "\n".join(crossover_lines(study, rows))
    assert "hyb: meets base at 1e+10 training FLOPs" in lines
    text = comparisons(study, rows)
    # at 1e9 FLOPs the hybrid is 0.1 worse; the seeds' noise cancels in the paired difference
    assert "| hyb | 1,000 | 2 | +0.100 | [+0.100, +0.100] |" in text
    far = _rows("hyb", 5.0, -0.2) + _rows("base", 2.0, -0.1)
    assert "not within the budgets run (the fitted lines meet at 1e+30" in "\n".join(
        crossover_lines(study, far))


def test_paired_comparison_adds_the_heldout_corpus_when_named():
    rows = _rows("hyb", 5.0, -0.2) + _rows("base", 4.0, -0.1)
    for row in rows:  # held-out: the hybrid 0.35 - 0.01 x seed under its test bpb
        row["heldout_bpb"] = row["test_bpb"] - (0.35 if row["arm"] == "hyb" else 0.0) \
            + 0.01 * row["seed"] * (row["arm"] == "hyb")
    # base's seed 2 missing at the largest budget: one seed pairs there
    rows = [r for r in rows if not (r["arm"] == "base" and r["seed"] == 2 and r["budget"] == 4000)]
    study = replace(_study(["hyb", "base"]),
                    evaluation=Evaluation(heldout=Heldout("shakespeare", "tinyshakespeare")))
    text = comparisons(study, rows)
    assert "shakespeare: mean difference" in text
    # 1e9 FLOPs: test +0.100 (paired noise cancels); held-out +0.100 - 0.35 + 0.01 x seed
    assert "| hyb | 1,000 | 2 | +0.100 | [+0.100, +0.100] | -0.235 | [-0.299, -0.171] |" in text
    assert "| hyb | 4,000 | 1 |" in text and "(one seed)" in text


def test_sweeps_mark_the_best_learning_rate_per_arm_and_budget():
    rows = (_rows("hyb", 5.0, -0.2, lr=1e-3, series="hyb@lr=0.001")
            + _rows("hyb", 4.9, -0.2, lr=2e-3, series="hyb@lr=0.002"))
    assert best_series(rows)[("hyb", 1000)] == "hyb@lr=0.002"
    text = table(rows)
    assert "| hyb@lr=0.002 **best** | 1,000 |" in text
    assert "| hyb@lr=0.001 | 1,000 |" in text


def test_table_gives_precision_and_recall_per_stage_and_a_dash_where_a_row_lacks_them():
    rows = _rows("hyb", 5.0, -0.2) + _rows("base", 4.0, -0.1)
    for row in rows:
        if row["arm"] == "hyb":
            row["compression_test"] = [2.0, 3.0]
            row["word_start_precision"], row["word_start_recall"] = [0.2, 0.3], [0.6, 0.5]
            if row["seed"] == 1:  # seed 2 scored before the word-edge measure existed
                row["word_edge_precision"], row["word_edge_recall"] = [0.4, 0.7], [0.8, 0.9]
    lines = [line for line in table(rows).splitlines() if line.startswith("| hyb | 1,000 |")]
    assert lines[0].endswith("| 2.00 / 3.00 | 0.20 / 0.60 ; 0.30 / 0.50 | 0.40 / 0.80 ; 0.70 / 0.90 |")
    base = [line for line in table(rows).splitlines() if line.startswith("| base | 1,000 |")]
    assert base[0].endswith("| - | - | - |")
