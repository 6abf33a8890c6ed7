"""results.json and STUDY.md of a study, with its plots, from the rows of its cells.

STUDY.md holds: mean +- standard deviation over seeds per arm (per learning rate of a sweep,
the best one per arm and budget marked) and budget; the paired comparison of every arm with the
study's baseline per budget (test bpb and, when named, the held-out corpus's; same seeds;
t-interval); the crossover of the fitted curves (`bytelm.study.stats`); compression over
training for the arms that chunk; and the plots bpb against training FLOPs and against
wall-clock (error bars: one standard deviation over seeds), bpb against learning rate for
sweeps, and bytes per chunk over training.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bytelm.run_dir import write_atomic, write_json_atomic
from bytelm.study.plan import budget_label
from bytelm.study.spec import Study
from bytelm.study.stats import (
    Fit,
    Paired,
    crossover,
    loglinear_fit,
    meeting_point,
    paired,
    spread,
)

RESULTS = "results.json"
STUDY = "STUDY.md"
LEVEL = 0.95
PLOTS = ("bpb_vs_flops.png", "bpb_vs_wallclock.png", "bpb_vs_lr.png", "compression.png")


def _done(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "done" and r.get("test_bpb") is not None]


def groups(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """Finished rows by (series, budget)."""
    out: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in _done(rows):
        out[r["series"], r["budget"]].append(r)
    return dict(out)


def best_series(rows: list[dict]) -> dict[tuple[str, int], str]:
    """(arm, budget) -> the series with the lowest mean test bpb (the arm itself without a sweep)."""
    best: dict[tuple[str, int], tuple[float, str]] = {}
    for (series, budget), cells in groups(rows).items():
        arm = cells[0]["arm"]
        mean = spread([c["test_bpb"] for c in cells])[0]
        if (arm, budget) not in best or mean < best[arm, budget][0]:
            best[arm, budget] = (mean, series)
    return {key: series for key, (_, series) in best.items()}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pm(values: list[float | None], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, sd = spread(values)
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _stage_means(cells: list[dict], key: str) -> list[float] | None:
    """Per-stage mean over seeds of a list-valued field; None when no cell has it."""
    lists = [c.get(key) for c in cells if c.get(key)]
    if not lists:
        return None
    return [sum(v[k] for v in lists) / len(lists) for k in range(len(lists[0]))]


def _stages(cells: list[dict], key: str, digits: int = 2) -> str:
    """Per-stage mean over seeds of a list-valued field, stages joined by '/'."""
    means = _stage_means(cells, key)
    return "-" if means is None else " / ".join(_fmt(m, digits) for m in means)


def _precision_recall(cells: list[dict], measure: str) -> str:
    """'P / R' of a boundary measure ("word_start" or "word_edge"), stages joined by ' ; ', or
    '-' without it (a model without a chunker, or a row scored before the measure existed)."""
    precision = _stage_means(cells, f"{measure}_precision")
    recall = _stage_means(cells, f"{measure}_recall")
    if precision is None or recall is None:
        return "-"
    return " ; ".join(f"{_fmt(p, 2)} / {_fmt(r, 2)}" for p, r in zip(precision, recall))


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def table(rows: list[dict]) -> str:
    best = best_series(rows)
    swept = any(r.get("series") != r.get("arm") for r in rows)
    lines = [
        "| arm | budget (bytes) | seeds | lr | FLOPs/byte as trained | training FLOPs | wall s "
        "| final val bpb | test bpb | held-out bpb | bytes/chunk (test) | word-start P / R "
        "| word-edge P / R |",
        "|" + "---|" * 13,
    ]
    for (series, budget), cells in sorted(groups(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        arm = cells[0]["arm"]
        mark = " **best**" if swept and best.get((arm, budget)) == series else ""
        lines.append(
            f"| {series}{mark} | {budget:,} | {len(cells)} | {cells[0]['lr']:g} "
            f"| {_sci(spread([c['flops_per_byte'] for c in cells])[0])} "
            f"| {_sci(spread([c['training_flops'] for c in cells])[0])} "
            f"| {_pm([c['wall_s'] for c in cells], 1)} | {_pm([c['final_val_bpb'] for c in cells])} "
            f"| {_pm([c['test_bpb'] for c in cells])} | {_pm([c.get('heldout_bpb') for c in cells])} "
            f"| {_stages(cells, 'compression_test')} | {_precision_recall(cells, 'word_start')} "
            f"| {_precision_recall(cells, 'word_edge')} |"
        )
    return "\n".join(lines)


def _arm_cells(rows: list[dict], arm: str, budget: int) -> list[dict]:
    """The cells of an arm at a budget: its best learning rate's when it sweeps."""
    series = best_series(rows).get((arm, budget))
    return groups(rows).get((series, budget), []) if series else []


def _paired_cells(result: Paired | None) -> str:
    """'mean | CI' of a paired difference, or '- | -' where the seeds do not pair."""
    if result is None:
        return "- | -"
    ci = "- (one seed)" if result.low is None else f"[{result.low:+.3f}, {result.high:+.3f}]"
    return f"{result.mean:+.3f} | {ci}"


def comparisons(study: Study, rows: list[dict]) -> str:
    """The paired table: per arm and budget, arm minus baseline on test bpb and, when the study
    names a held-out corpus, on its bpb too (the same seeds paired)."""
    if study.baseline is None:
        return "No baseline arm is named, so no paired comparison."
    heldout = study.evaluation.heldout
    metrics = [("test_bpb", "test")] + ([("heldout_bpb", heldout.name)] if heldout else [])
    head = " | ".join(f"{name}: mean difference | {LEVEL:.0%} CI" for _, name in metrics)
    lines = [
        f"Bpb, arm minus {study.baseline}, over the seeds both ran (negative: the arm is "
        f"better); {LEVEL:.0%} Student-t interval of the mean difference. Arms that sweep use "
        "their best learning rate at each budget.",
        "",
        f"| arm | budget (bytes) | seeds | {head} |",
        "|---|---|---|" + "---|---|" * len(metrics),
    ]
    for budget in sorted({b.bytes for b in study.budgets}):
        base_cells = _arm_cells(rows, study.baseline, budget)
        for arm in study.arms:
            if arm.name == study.baseline:
                continue
            mine_cells = _arm_cells(rows, arm.name, budget)
            results = [
                paired({c["seed"]: c[key] for c in mine_cells if c.get(key) is not None},
                       {c["seed"]: c[key] for c in base_cells if c.get(key) is not None}, LEVEL)
                for key, _ in metrics
            ]
            if results[0] is None:
                continue
            cells = " | ".join(_paired_cells(r) for r in results)
            lines.append(f"| {arm.name} | {budget:,} | {len(results[0].seeds)} | {cells} |")
    return "\n".join(lines)


def fits(study: Study, rows: list[dict]) -> dict[str, Fit]:
    """Per arm, the log-linear fit of test bpb on training FLOPs over its (best-lr) cells."""
    out = {}
    for arm in study.arms:
        points = [(c["training_flops"], c["test_bpb"]) for b in study.budgets
                  for c in _arm_cells(rows, arm.name, b.bytes) if c.get("training_flops")]
        fit = loglinear_fit(points)
        if fit is not None:
            out[arm.name] = fit
    return out


def crossover_lines(study: Study, rows: list[dict]) -> list[str]:
    """One line per arm: where its fitted curve meets the baseline's."""
    if study.baseline is None:
        return ["No baseline arm is named, so no crossover."]
    fitted = fits(study, rows)
    lines = ["Fit: test bpb = alpha + beta * log10(training FLOPs), least squares over every "
             "finished cell of the arm (log-linear; two budgets at least)."]
    base = fitted.get(study.baseline)
    for arm in study.arms:
        if arm.name == study.baseline:
            continue
        mine = fitted.get(arm.name)
        if mine is None or base is None:
            lines.append(f"- {arm.name}: needs finished cells at two budgets or more for both arms")
            continue
        flops = [c["training_flops"] for b in study.budgets for name in (arm.name, study.baseline)
                 for c in _arm_cells(rows, name, b.bytes)]
        low, high = min(flops), max(flops)
        fit_text = (f"{arm.name} {mine.alpha:.3f} {mine.beta:+.4f}·log10 C, "
                    f"{study.baseline} {base.alpha:.3f} {base.beta:+.4f}·log10 C")
        met = crossover(mine, base, low, high)
        if met is not None:
            lines.append(f"- {arm.name}: meets {study.baseline} at {met:.3g} training FLOPs ({fit_text})")
            continue
        beyond = meeting_point(mine, base)
        where = ("the lines are parallel" if beyond is None
                 else f"the fitted lines meet at {beyond:.3g} FLOPs, outside [{low:.3g}, {high:.3g}]")
        lines.append(f"- {arm.name}: not within the budgets run ({where}; {fit_text})")
    return lines


def _curve_at(curve: list[list[float]], steps: int, fraction: float) -> list[float] | None:
    if not curve:
        return None
    target = fraction * max(steps - 1, 1)
    return min(curve, key=lambda p: abs(p[0] - target))[1:]


def compression_table(rows: list[dict]) -> str:
    lines = ["| arm | budget (bytes) | target | bytes/chunk at 10% / 50% / end of training "
             "| mean over training | on test bytes |", "|---|---|---|---|---|---|"]
    found = False
    for (series, budget), cells in sorted(groups(rows).items(), key=lambda kv: (kv[0][1], kv[0][0])):
        curved = [c for c in cells if c.get("compression_curve")]
        if not curved:
            continue
        found = True
        at = []
        for fraction in (0.1, 0.5, 1.0):
            values = [_curve_at(c["compression_curve"], c["steps"], fraction) for c in curved]
            at.append(" / ".join(_fmt(sum(v[k] for v in values) / len(values), 2)
                                 for k in range(len(values[0]))))
        target = " / ".join(f"{t:g}" for t in cells[0].get("target_compression") or []) or "-"
        lines.append(f"| {series} | {budget:,} | {target} | {' ; '.join(at)} "
                     f"| {_stages(cells, 'compression_train')} | {_stages(cells, 'compression_test')} |")
    return "\n".join(lines) if found else "No arm with a chunker."


# ---- plots ---------------------------------------------------------------------------------


def _finish(fig, ax, xlabel: str, ylabel: str, path: Path, drawn: list[str]) -> None:
    """Label, save (atomically, as the eval report does) and close one plot."""
    import matplotlib.pyplot as plt

    from bytelm.eval.report_plots import _save

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
    drawn.append(path.name)


def _points(rows: list[dict], key: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """series -> [(mean x, sd x, mean test bpb, sd bpb)] over budgets, x = `key`."""
    out: dict[str, list] = defaultdict(list)
    for (series, _), cells in sorted(groups(rows).items(), key=lambda kv: kv[0][1]):
        xs = [c[key] for c in cells if c.get(key) is not None]
        if not xs:
            continue
        mx, sx = spread(xs)
        my, sy = spread([c["test_bpb"] for c in cells])
        out[series].append((mx, sx or 0.0, my, sy or 0.0))
    return dict(out)


def plot(study: Study, rows: list[dict], out: Path) -> list[str]:
    """Draw the plots there is data for; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    fitted = fits(study, rows)
    for key, xlabel, name in (("training_flops", "training FLOPs", PLOTS[0]),
                              ("wall_s", "training wall-clock (s)", PLOTS[1])):
        series = _points(rows, key)
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for k, (label, pts) in enumerate(series.items()):
            ax.errorbar([p[0] for p in pts], [p[2] for p in pts], xerr=[p[1] for p in pts],
                        yerr=[p[3] for p in pts], fmt="o-", ms=4, capsize=3, color=f"C{k % 10}",
                        label=label)
            if key == "training_flops" and label in fitted and len(pts) > 1:
                xs = [min(p[0] for p in pts), max(p[0] for p in pts)]
                ax.plot(xs, [fitted[label](x) for x in xs], "--", color=f"C{k % 10}", lw=1)
        ax.set_xscale("log")
        _finish(fig, ax, xlabel, "test bpb (mean ± sd over seeds)", out / name, drawn)
    if any(r.get("series") != r.get("arm") for r in _done(rows)):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        by_arm: dict[tuple[str, int], list] = defaultdict(list)
        for (_, budget), cells in groups(rows).items():
            mean, sd = spread([c["test_bpb"] for c in cells])
            by_arm[cells[0]["arm"], budget].append((cells[0]["lr"], mean, sd or 0.0))
        for k, ((arm, budget), pts) in enumerate(sorted(by_arm.items())):
            pts.sort()
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        fmt="o-", ms=4, capsize=3, color=f"C{k % 10}",
                        label=f"{arm}, {budget_label(budget)} bytes")
        ax.set_xscale("log")
        _finish(fig, ax, "peak learning rate", "test bpb (mean ± sd over seeds)",
                out / PLOTS[2], drawn)
    curved = {key: cells for key, cells in groups(rows).items()
              if any(c.get("compression_curve") for c in cells)}
    if curved:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for k, ((series, budget), cells) in enumerate(sorted(curved.items())):
            for j, c in enumerate(c for c in cells if c.get("compression_curve")):
                curve = c["compression_curve"]
                ax.plot([p[0] / max(c["steps"] - 1, 1) for p in curve], [p[1] for p in curve],
                        color=f"C{k % 10}", lw=1, alpha=0.8,
                        label=f"{series}, {budget_label(budget)} bytes" if j == 0 else None)
        targets = {c.get("target_compression")[0] for cells in curved.values() for c in cells
                   if c.get("target_compression")}
        for target in targets:
            ax.axhline(target, color="gray", ls="--", lw=1)
        _finish(fig, ax, "fraction of training",
                "bytes per chunk, stage 0 (training batches; dashed: target)", out / PLOTS[3], drawn)
    return drawn


def write_report(study: Study, rows: list[dict], missing: list[str], out: Path,
                 study_file: str) -> None:
    """results.json and STUDY.md (with its plots) in `out`."""
    write_json_atomic(out / RESULTS, {"study": study.name, "file": study_file, "rows": rows,
                                      "not_run": missing})
    done, failed = len(_done(rows)), [r for r in rows if r.get("status", "").startswith("failed")]
    drawn = plot(study, rows, out)
    parts = [
        f"# Study {study.name}",
        "",
        *([study.question, ""] if study.question else []),
        f"Study file `{study_file}`; written by `bytelm study`. Cells: {done} done, "
        f"{len(failed)} failed, {len(missing)} not run yet"
        + (f" ({', '.join(missing)})" if missing else "") + ".",
        "",
        "## Test bpb per arm and budget (mean ± sd over seeds)",
        "",
        table(rows),
        "",
        f"## Paired comparison with {study.baseline or 'a baseline'}",
        "",
        comparisons(study, rows),
        "",
        "## Crossover",
        "",
        *crossover_lines(study, rows),
        "",
        "## Compression over training",
        "",
        compression_table(rows),
        "",
    ]
    if failed:
        parts += ["## Failed cells", "", *(f"- {r['cell']}: {r['status']}" for r in failed), ""]
    if drawn:
        parts += ["## Plots", "", *(f"![{name[:-4]}]({name})" for name in drawn), ""]
    write_atomic(out / STUDY, "\n".join(parts))

