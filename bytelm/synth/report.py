"""The synth results as markdown tables and Zoology-style plots.

Tables: MQAR accuracy by mixer (rows) and pairs x d_model (columns), at the trained length and
at each longer evaluation length; the other token tasks by mixer and d_model; `bytes_mqar` by
byte model and pairs; and the state bytes and parameters of every model. Plots: accuracy against
d_model, and against decoding-state bytes per layer, one line per mixer, one panel per number of
pairs (`accuracy_vs_dmodel.png`, `accuracy_vs_state.png`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytelm.run_dir import atomic_output, write_atomic


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _acc(cell: dict | None, length: int | None = None) -> str:
    if cell is None:
        return "-"
    value = cell["accuracy"].get(str(length or cell["seq_len"]))
    return "-" if value is None else f"{value:.3f}"


def _order(values) -> list:
    return list(dict.fromkeys(values))


def _token_cells(cells: list[dict], task: str) -> list[dict]:
    return [c for c in cells if c["task"] == task and not c.get("bytes_model")]


def mqar_tables(cells: list[dict]) -> str:
    """MQAR accuracy by mixer x (pairs, d_model), one table per (trained length, eval length)."""
    mqar = _token_cells(cells, "mqar")
    out = []
    for seq_len in sorted({c["seq_len"] for c in mqar}):
        group = [c for c in mqar if c["seq_len"] == seq_len]
        cols = sorted({(c["pairs"], c["d_model"]) for c in group})
        index = {(c["model"], c["pairs"], c["d_model"]): c for c in group}
        for length in sorted({int(k) for c in group for k in c["accuracy"]}):
            note = "" if length == seq_len else f", evaluated at {length} (trained at {seq_len})"
            rows = [
                [m] + [_acc(index.get((m, p, d)), length) for p, d in cols]
                for m in _order(c["model"] for c in group)
            ]
            out.append(
                f"MQAR accuracy, length {seq_len}{note} (columns: pairs / d_model):\n\n"
                + _table(["mixer"] + [f"{p} / {d}" for p, d in cols], rows)
            )
    return "\n".join(out)


def other_token_tables(cells: list[dict]) -> str:
    """copy, selective_copy and induction: accuracy by mixer x d_model."""
    out = []
    for task in ("copy", "selective_copy", "induction"):
        group = _token_cells(cells, task)
        if not group:
            continue
        settings = _order(c["id"].split("__")[0] for c in group)
        widths = sorted({c["d_model"] for c in group})
        index = {(c["id"].split("__")[0], c["model"], c["d_model"]): c for c in group}
        for setting in settings:
            rows = [
                [m] + [_acc(index.get((setting, m, d))) for d in widths]
                for m in _order(c["model"] for c in group)
            ]
            out.append(f"{setting} accuracy (columns: d_model):\n\n" + _table(["mixer"] + [str(d) for d in widths], rows))
    return "\n".join(out)


def bytes_table(cells: list[dict]) -> str:
    group = [c for c in cells if c.get("bytes_model")]
    if not group:
        return ""
    settings = _order(c["id"].split("__")[0] for c in group)
    index = {(c["id"].split("__")[0], c["model"]): c for c in group}
    rows = [
        [m] + [_acc(index.get((s, m))) for s in settings]
        + [f"{next(c['params'] for c in group if c['model'] == m):,}"]
        for m in _order(c["model"] for c in group)
    ]
    return (
        "bytes_mqar exact match of the value bytes (columns: task setting):\n\n"
        + _table(["byte model"] + settings + ["params"], rows)
    )


def models_table(cells: list[dict]) -> str:
    """Parameters, state bytes, steps and seconds of every cell."""
    rows = [
        [
            c["id"], f"{c['params']:,}", f"{c['params_no_embedding']:,}", f"{c['state_bytes']:,}",
            ", ".join(f"{b:,}" for b in c["state_bytes_per_layer"] or []) or "-",
            str(c["steps"]), str(c["batch_size"]), f"{c['train_seconds']:.1f}",
        ]
        for c in cells
    ]
    header = ["cell", "params", "params w/o embedding", "state bytes", "per layer", "steps", "batch", "train s"]
    return _table(header, rows)


def markdown(data: dict[str, Any], plots: list[str] | None = None) -> str:
    """The synth section: every table, then the plots (paths relative to the markdown file)."""
    cells = data["cells"]
    parts = [
        f"Grid `{data['grid']}`, seed {data['seed']}: {len(cells)} cells trained from scratch in "
        f"{data['wall_seconds']:.0f} s in all (by default {data['train']['steps']} steps of "
        f"{data['train']['batch_size']} examples each, accuracy on {data['train']['eval_examples']} "
        "held-out examples per length; each cell's steps and batch are in the last table).\n",
        mqar_tables(cells), other_token_tables(cells), bytes_table(cells),
        "Every cell:\n\n" + models_table(cells),
    ]
    parts += [f"![{Path(p).stem}]({p})\n" for p in plots or []]
    return "\n".join(p for p in parts if p)


def plot(data: dict[str, Any], out: Path) -> list[str]:
    """Accuracy against d_model and against state bytes per layer (MQAR, trained length);
    returns the file names written (none without MQAR cells)."""
    mqar = _token_cells(data["cells"], "mqar")
    if not mqar:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(c["seq_len"], c["pairs"]) for c in mqar})
    models = _order(c["model"] for c in mqar)
    palette = plt.get_cmap("tab10" if len(models) <= 10 else "tab20").colors
    color = {m: palette[i % len(palette)] for i, m in enumerate(models)}  # one colour per mixer in every panel
    names = []
    for stem, xkey, xlabel in (
        ("accuracy_vs_dmodel", "d_model", "model dimension"),
        ("accuracy_vs_state", "state", "decoding state per layer (bytes)"),
    ):
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False, sharey=True)
        for ax, (seq_len, pairs) in zip(axes[0], panels):
            group = [c for c in mqar if c["seq_len"] == seq_len and c["pairs"] == pairs]
            for model in _order(c["model"] for c in group):
                points = sorted(
                    (_x(c, xkey), c["accuracy"][str(seq_len)]) for c in group if c["model"] == model
                )
                ax.plot(*zip(*points), marker="o", label=model, color=color[model])
            ax.set_title(f"{pairs} pairs, length {seq_len}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            if xkey == "state":
                ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
        axes[0][0].set_ylabel("MQAR accuracy")
        handles = [plt.Line2D([], [], color=color[m], marker="o", label=m) for m in models]
        fig.legend(handles=handles, fontsize=7, loc="center right")
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        with atomic_output(out / f"{stem}.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        names.append(f"{stem}.png")
    return names


def _x(cell: dict, key: str) -> float:
    if key == "d_model":
        return cell["d_model"]
    per_layer = cell["state_bytes_per_layer"] or [cell["state_bytes"]]
    return sum(per_layer) / len(per_layer)


def load_synth(path: Path) -> dict[str, Any]:
    """A synth.json written by `bytelm synth`, or one clear error."""
    import json

    from bytelm.errors import BytelmError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BytelmError(f"{path}: unreadable synth.json ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise BytelmError(f"{path}: not a synth.json written by `bytelm synth` (no cells)")
    return data


def add_to_report(synth_json: Path, out: Path, report: Path | None) -> Path:
    """Append the synth section (tables and plots drawn into `out`) to REPORT.md, or start one."""
    data = load_synth(synth_json)
    out.mkdir(parents=True, exist_ok=True)
    text = report.read_text() if report is not None else "# bytelm evaluation report\n\n"
    text += "\n## Recall trained from scratch (bytelm synth)\n\n" + markdown(data, plot(data, out))
    path = out / "REPORT.md"
    write_atomic(path, text)
    return path
