"""The report of `bytelm bench generate`: its markdown table and its plot, from the JSON report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MiB = 1 << 20


def format_table(report: dict[str, Any]) -> str:
    """A side-by-side markdown table: one row per context, hybrid then baseline, then the ratio
    of their bytes/s (median of rounds, and the rounds' range)."""
    by = {(r["kind"], r["context_bytes"]): r for r in report["results"]}
    contexts = sorted({r["context_bytes"] for r in report["results"]})
    head = (
        "| context | hybrid bytes/s | hybrid state MiB | hybrid peak MiB "
        "| baseline bytes/s | baseline state MiB | baseline peak MiB | hybrid / baseline |"
    )
    lines = [head, "|---:" * 8 + "|"]
    for c in contexts:
        cells = [_context_name(c)]
        for kind in ("hybrid", "baseline"):
            r = by[(kind, c)]
            cells += [
                f"{r['bytes_per_s']:,.0f}",
                f"{r['state_bytes'] / MiB:.3f}",
                f"{r['peak_bytes'] / MiB:.2f}",
            ]
        rounds = report["round_ratios_by_context"][str(c)]
        cells.append(f"{report['ratio_by_context'][str(c)]:.2f} ({min(rounds):.2f}..{max(rounds):.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _context_name(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def plot(report: dict[str, Any], path: Path) -> None:
    """Two panels against context length (log scale): decode bytes/s, and memory in MiB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, colour in (("hybrid", "tab:blue"), ("baseline", "tab:orange")):
        rows = sorted(
            (r for r in report["results"] if r["kind"] == kind), key=lambda r: r["context_bytes"]
        )
        x = [r["context_bytes"] for r in rows]
        speed.plot(x, [r["bytes_per_s"] for r in rows], "o-", color=colour, label=kind)
        memory.plot(
            x, [r["peak_bytes"] / MiB for r in rows], "o-", color=colour, label=f"{kind} peak"
        )
        memory.plot(
            x, [r["state_bytes"] / MiB for r in rows], "s--", color=colour, label=f"{kind} state"
        )
    contexts = sorted({r["context_bytes"] for r in report["results"]})
    for ax, title, unit in ((speed, "decode speed", "bytes/s"), (memory, "decode memory", "MiB")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(contexts, [_context_name(c) for c in contexts])
        ax.minorticks_off()
        ax.set_xlabel("context (bytes)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} ({report['device']})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
