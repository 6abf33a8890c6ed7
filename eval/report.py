"""`bytelm report RUN_OR_DIR ... --out DIR`: REPORT.md with tables and PNG plots.

Each argument is a run directory (summary.json, metrics.csv, and the JSON of
`bytelm eval all RUN --out RUN/eval` under eval/) or an evaluation folder written by
`bytelm eval all` (its model.json names the run it came from). The report states, for every
number, the model, its FLOPs per byte, bytes seen and seed, and flags scores at chance level:
a score is "at chance" when it is within two standard errors of chance (or below it), so a tiny
model's floor is not read as a result.

Plots: validation bpb against training FLOPs and against wall-clock (from each run's
metrics.csv: FLOPs = bytes trained x FLOPs per byte, wall-clock from the logged bytes/s unless
the file has its own columns), task bars, and recall accuracy against context length.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bytelm.errors import BytelmError
from bytelm.run_dir import write_atomic

EVAL_FILES = ("model.json", "bpb.json", "harness.json", "robustness.json", "recall.json")
ZEROSHOT = [
    "bytelm_hellaswag", "bytelm_piqa", "bytelm_arc_easy", "bytelm_arc_challenge",
    "bytelm_lambada", "bytelm_winogrande", "bytelm_openbookqa",
]  # fmt: skip
# chance level per task (multiple choice: 1/choices; generation: exact match 0; binary CUTE: 0.5)
CHANCE = {
    "bytelm_hellaswag": 0.25, "bytelm_piqa": 0.5, "bytelm_arc_easy": 0.25,
    "bytelm_arc_challenge": 0.25, "bytelm_lambada": 0.0, "bytelm_winogrande": 0.5,
    "bytelm_openbookqa": 0.25, "bytelm_probe_spelling": 0.25, "bytelm_probe_inword": 0.25,
    "bytelm_probe_charedit": 0.25, "bytelm_cute_contains_char": 0.5,
    "bytelm_cute_contains_word": 0.5, "bytelm_cute_orth": 0.5, "bytelm_cute_sem": 0.5,
    "bytelm_cute_contains_char_rand": 0.5,
}  # fmt: skip


@dataclass
class Entry:
    """One evaluated model: its description, training curve and evaluation results."""

    name: str
    info: dict
    run_dir: Path | None
    evals: dict = field(default_factory=dict)  # file stem -> JSON

    @property
    def tasks(self) -> dict:
        return self.evals.get("harness", {}).get("tasks", {})


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BytelmError(f"{path}: unreadable JSON ({err})") from None


def _eval_dir(path: Path) -> Path | None:
    for candidate in (path, path / "eval"):
        if (candidate / "model.json").is_file() or (candidate / "bpb.json").is_file():
            return candidate
    return None


def load_entry(path: str | Path) -> Entry:
    """A run directory or an evaluation folder -> Entry."""
    path = Path(path)
    if not path.is_dir():
        raise BytelmError(f"{path}: no such run directory or evaluation folder")
    evals_at = _eval_dir(path)
    evals = {}
    if evals_at is not None:
        evals = {
            f.removesuffix(".json"): _read_json(evals_at / f)
            for f in EVAL_FILES
            if (evals_at / f).is_file()
        }
    info = dict(evals.get("model", {}))
    run_dir = (
        path if (path / "summary.json").is_file() or (path / "metrics.csv").is_file() else None
    )
    if run_dir is None and info.get("path") and Path(info["path"]).is_dir():
        run_dir = Path(info["path"])
    if run_dir is not None and (run_dir / "summary.json").is_file():
        summary = _read_json(run_dir / "summary.json")
        info = {**summary, **{k: v for k, v in info.items() if v is not None}}
    if not info and not evals:
        raise BytelmError(
            f"{path}: neither a run directory (summary.json) nor an evaluation folder"
        )
    name = info.get("name") or (run_dir or path).name
    return Entry(name=str(name), info=info, run_dir=run_dir, evals=evals)


# ------------------------------------------------------------------------------- formatting
def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 1000
    ):
        return f"{int(value):,}"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def at_chance(value: float | None, stderr: float | None, chance: float | None) -> bool:
    if value is None or chance is None:
        return False
    margin = 2 * stderr if stderr else 0.02
    return value <= chance + margin


def _score(row: dict | None, metric: str, chance: float | None) -> str:
    if not row or row.get(metric) is None:
        return "-"
    value, err = row[metric], row.get(f"{metric}_stderr")
    text = _num(value) + (f" ± {_num(err)}" if err else "")
    return text + (" (chance)" if at_chance(value, err, chance) else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def models_table(entries: list[Entry]) -> str:
    header = [
        "model",
        "kind",
        "params",
        "FLOPs/byte",
        "bytes seen",
        "seed",
        "test bpb",
        "bpb bytes",
        "final val bpb",
    ]
    rows = []
    for e in entries:
        i, b = e.info, e.evals.get("bpb", {})
        rows.append([
            e.name, str(i.get("kind") or "-"), _num(i.get("params")), _num(i.get("flops_per_byte")),
            _num(i.get("bytes_seen")), str(i.get("seed", "-")), _num(b.get("bpb"), 4),
            _num(b.get("bytes")), _num(i.get("final_val_bpb"), 4),
        ])  # fmt: skip
    return _table(header, rows)


def seeds_table(entries: list[Entry]) -> str:
    """Test bpb per model kind/recipe over its seeds (mean, spread, number of seeds)."""
    groups: dict[str, list[float]] = {}
    for e in entries:
        bpb = e.evals.get("bpb", {}).get("bpb")
        if bpb is not None:
            recipe = e.info.get("recipe")
            key = Path(recipe).stem if recipe else str(e.info.get("kind") or e.name)
            groups.setdefault(key, []).append(bpb)
    rows = [
        [
            k,
            str(len(v)),
            _num(statistics.mean(v), 4),
            _num(statistics.stdev(v), 4) if len(v) > 1 else "- (1 seed)",
        ]
        for k, v in groups.items()
    ]
    return _table(["model (recipe)", "seeds", "mean test bpb", "std"], rows)


def task_table(entries: list[Entry], tasks: list[str], metrics: list[str]) -> str:
    header = ["task", "metric"] + [e.name for e in entries]
    rows = []
    for task in tasks:
        for metric in metrics:
            if not any(e.tasks.get(task, {}).get(metric) is not None for e in entries):
                continue
            chance = CHANCE.get(task, 0.0) if metric != "perplexity" else None
            rows.append(
                [task.removeprefix("bytelm_"), metric]
                + [_score(e.tasks.get(task), metric, chance) for e in entries]
            )
    return _table(header, rows)


def limits_line(entries: list[Entry]) -> str:
    parts = []
    for e in entries:
        h = e.evals.get("harness", {})
        if h:
            lim = ", ".join(
                f"{g.removeprefix('bytelm_')}: {v if v is not None else 'all'}"
                for g, v in h.get("limits", {}).items()
            )
            trunc = sum((h.get("truncated") or {}).values())
            parts.append(f"{e.name}: documents per task {lim}; left-truncated requests {trunc}")
    return "".join(f"- {p}\n" for p in parts)


def robustness_tables(entries: list[Entry]) -> str:
    from bytelm.eval.perturb import PERTURBATIONS

    header = ["perturbation"] + [f"{e.name} bpb (Δ)" for e in entries]
    rows = []
    for name in ["clean", *PERTURBATIONS]:
        row = [name]
        for e in entries:
            r = e.evals.get("robustness", {}).get("bpb", {}).get(name)
            row.append(
                "-"
                if not r
                else _num(r["bpb"], 4) + (f" ({r['delta']:+.3f})" if "delta" in r else "")
            )
        rows.append(row)
    out = "bpb on a fixed test slice:\n\n" + _table(header, rows)
    header = ["perturbation"] + [f"{e.name} acc_norm (Δ)" for e in entries]
    rows = []
    for name in PERTURBATIONS:
        row = [name]
        for e in entries:
            r = e.evals.get("robustness", {}).get("hellaswag", {}).get(name)
            if not r or r.get("acc_norm") is None:
                row.append("-")
                continue
            flag = (
                " (chance)"
                if at_chance(
                    r["acc_norm"],
                    e.tasks.get(f"bytelm_hellaswag_{name}", {}).get("acc_norm_stderr"),
                    0.25,
                )
                else ""
            )
            row.append(
                _num(r["acc_norm"])
                + (f" ({r['delta_acc_norm']:+.3f})" if "delta_acc_norm" in r else "")
                + flag
            )
        rows.append(row)
    return out + "\nHellaSwag (perturbed context, clean endings):\n\n" + _table(header, rows)


def recall_table(entries: list[Entry]) -> str:
    header = ["kind", "length"] + [e.name for e in entries]
    rows = []
    lengths: dict[str, int] = {}
    for e in entries:
        lengths.update(e.evals.get("recall", {}).get("lengths", {}))
    for kind in ("copy", "kv", "needle"):
        for key in lengths:
            row = [kind, f"{lengths[key]:,} B"]
            for e in entries:
                rec = e.evals.get("recall", {})
                value = rec.get("acc", {}).get(kind, {}).get(key)
                err = rec.get("stderr", {}).get(kind, {}).get(key)
                if value is None:
                    row.append("-")
                    continue
                text = _num(value) + (
                    " (chance)" if at_chance(value, err, rec.get("chance")) else ""
                )
                if not rec.get("fits", {}).get(key, True):
                    text += " (truncated)"
                row.append(text)
            rows.append(row)
    notes = "".join(
        f"- {e.name}: harness max length {e.evals['recall'].get('max_length')} ids, chance {e.evals['recall'].get('chance')}\n"
        for e in entries
        if e.evals.get("recall")
    )
    return _table(header, rows) + "\n" + notes


# ------------------------------------------------------------------------------- curves
def _image(alt: str, name: str | None) -> str:
    """A markdown image line, or nothing when the plot was not drawn."""
    return "" if name is None else f"![{alt}]({name})\n\n"


def render(entries: list[Entry], out: Path) -> Path:
    """Write REPORT.md and its PNG plots into `out`; returns the REPORT.md path."""
    import matplotlib

    matplotlib.use("Agg")
    from bytelm.eval.cute import STEMS

    out.mkdir(parents=True, exist_ok=True)
    from bytelm.eval.report_plots import plot_curves, plot_recall, plot_task_bars, training_curve

    # a plot only for data that exist: no empty axes for a run that was never evaluated
    has_curves = any(training_curve(e) or training_curve(e, "train/bpb") for e in entries)
    curves = plot_curves(entries, out) if has_curves else [None, None]
    bars = plot_task_bars(entries, out) if any(e.tasks for e in entries) else None
    has_recall = any(e.evals.get("recall", {}).get("acc") for e in entries)
    recall_png = plot_recall(entries, out) if has_recall else None
    cute = [f"bytelm_cute_{s}" for s in STEMS]
    probes = ["bytelm_probe_spelling", "bytelm_probe_inword", "bytelm_probe_charedit"]
    text = (
        "# bytelm evaluation report\n\n"
        "Every score names its model; the models table gives each one's parameters, FLOPs per "
        'byte, bytes seen and seed. "(chance)" marks a score within two standard errors of '
        "chance level (or below it): a floor, not a result.\n\n"
        "## Models and bits per byte\n\n" + models_table(entries) + "\n"
        "Test bpb over seeds:\n\n" + seeds_table(entries) + "\n"
        + _image("validation bpb vs training FLOPs", curves[0])
        + _image("validation bpb vs wall-clock", curves[1])
        + "## Zero-shot tasks\n\n"
        + limits_line(entries)
        + "\n"
        + task_table(entries, ZEROSHOT, ["acc", "acc_norm", "acc_bytes", "perplexity"])
        + "\n"
        + _image("task bars", bars)
        + "## Character suite\n\nCUTE, 4-shot greedy exact match:\n\n"
        + task_table(entries, cute, ["exact_match"])
        + "\n"
        "Likelihood probes (4-way choice):\n\n"
        + task_table(entries, probes, ["acc", "acc_norm"])
        + "\n"
        "## Robustness\n\n" + robustness_tables(entries) + "\n"
        "## Recall by context length\n\n" + recall_table(entries) + "\n"
        + _image("recall vs length", recall_png)
    )
    path = out / "REPORT.md"
    write_atomic(path, text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bytelm report", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", help="run directories or evaluation folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for REPORT.md and plots")
    parser.add_argument("--synth", type=Path, help="synth.json of `bytelm synth`: adds its section")
    args = parser.parse_args(argv)
    if not args.runs and args.synth is None:
        raise BytelmError("give run directories or evaluation folders, or --synth synth.json")
    entries = [load_entry(p) for p in args.runs]
    path = render(entries, args.out) if entries else None
    if args.synth is not None:
        from bytelm.synth.report import add_to_report

        path = add_to_report(args.synth, args.out, path)
    print(f"wrote {path}")
    return 0
