"""`bytelm synth [--grid GRID] [--out DIR] [--quick]`: recall tasks trained from scratch, per mixer.

Each cell of the grid (a task x a model) is trained from scratch and evaluated on held-out
generated examples (see bytelm.synth). Results go under DIR (default runs/synth/<grid name>):
`cells/<cell>.json` per cell, written atomically as each cell finishes, so an interrupted run
continues where it stopped and a rerun skips every finished cell whose settings did not change;
then `synth.json` (all cells), `table.md` and the plots. The whole grid is validated before the
first cell trains, so a bad grid is one error line and leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bytelm.commands.arguments import ArgumentParser
from bytelm.errors import BytelmError
from bytelm.run_dir import write_atomic, write_json_atomic

DEFAULT_GRID = "default"
QUICK_GRID = "quick"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="bytelm synth",
        description="Train recall tasks (MQAR, copying, induction, byte MQAR) from scratch, "
        "mixer by mixer, and write synth.json, a table and plots.",
    )
    parser.add_argument("--grid", help="grid YAML, or a name in recipes/synth/ (default: default)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/synth/<grid name>)")
    parser.add_argument("--quick", action="store_true", help="the small grid of about a minute")
    return parser


def _stored(path: Path, spec: dict) -> dict | None:
    """The finished result at `path` when it was made with the same settings, else None."""
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if result.get("spec") == spec else None


def run_grid(grid, out: Path, log=print) -> dict:
    """Train every unfinished cell of `grid` under `out`, then write synth.json, table.md, plots."""
    from bytelm.synth.report import markdown, plot
    from bytelm.synth.train import train_cell

    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(grid.train, k) for k in grid.train.__dataclass_fields__}
    results, trained, start = [], 0, time.perf_counter()
    for i, cell in enumerate(grid.cells, 1):
        path = cells_dir / f"{cell.id}.json"
        spec = {**cell.spec(), "seed": grid.seed}
        result = _stored(path, spec)
        if result is None:
            result = {**train_cell(cell, grid.seed, out / "work"), "spec": spec}
            write_json_atomic(path, result)
            trained += 1
            state = "trained"
        else:
            state = "skipped (done)"
        acc = ", ".join(f"{k}: {v:.3f}" for k, v in result["accuracy"].items())
        log(f"[{i}/{len(grid.cells)}] {cell.id}: {state}, accuracy {acc}, {result['train_seconds']:.1f} s")
        results.append(result)
    data = {
        "grid": grid.name, "seed": grid.seed, "train": settings, "cells": results,
        "cells_trained_now": trained,
        "wall_seconds": sum(r["train_seconds"] + r["eval_seconds"] for r in results),
        "this_run_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(out / "synth.json", data)
    plots = plot(data, out)
    write_atomic(out / "table.md", f"# synth: {grid.name}\n\n" + markdown(data, plots))
    return data


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from bytelm.synth.grid import load_grid

    if args.quick and args.grid:
        raise BytelmError("--quick runs the quick grid; give either --quick or --grid")
    grid = load_grid(QUICK_GRID if args.quick else (args.grid or DEFAULT_GRID))
    out = args.out or Path("runs") / "synth" / grid.name
    if out.exists() and not out.is_dir():
        raise BytelmError(f"--out {out} exists and is not a folder")
    data = run_grid(grid, out, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(
        f"bytelm synth: {len(data['cells'])} cells ({data['cells_trained_now']} trained now) in "
        f"{out}: synth.json, table.md and plots",
        file=sys.stderr,
    )
    print(out / "synth.json")
    return 0
