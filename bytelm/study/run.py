"""Run a study's cells: train each through `bytelm train`'s code, score it through `bytelm eval
bpb`'s code, and collect one row per cell.

A cell is done when its run finished (`summary.json`, not marked interrupted) and its
evaluations are on disk; done cells are skipped, so a rerun continues where an interrupted study
stopped (an interrupted cell resumes from its newest intact checkpoint). `study_cell.json` in a
cell's folder records what decided it; a cell folder made with other settings is refused before
anything trains. A cell that fails is reported and the others go on; a SIGINT or SIGTERM stops
the study with the training command's exit code.

A finished row of OUT/results.json also counts as done when the cell has no folder in OUT (the
study continues on another machine from its results alone, e.g. a committed copy placed in
OUT): its row is kept when the identity stored in it equals the cell's (recipe arguments, seed,
budget, learning rate, steps and evaluation settings). To run such a cell again, remove its row.

Evaluations of a cell (in RUN/eval/, beside what `bytelm eval` writes):
    bpb.json          test bpb on the first `eval.test_bytes` bytes of the corpus it trained on
    bpb_heldout.json  bpb on the held-out corpus of `eval.heldout`, when one is named
    chunker.json      bytes per chunk and word-start / word-edge precision / recall per stage
                      on the same test bytes (byte models; `bytelm.eval.chunker`)
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bytelm.errors import BytelmError
from bytelm.layers.chunking import ALIGNMENT_KEYS
from bytelm.run_dir import METRICS, read_summary, run_finished, write_json_atomic
from bytelm.study.plan import CELL_FILE, Cell
from bytelm.study.report import RESULTS
from bytelm.study.spec import Evaluation

INTERRUPTED = (130, 143)
EVAL = "eval"
TEST_BPB = "bpb.json"
HELDOUT_BPB = "bpb_heldout.json"
CHUNKER = "chunker.json"
CURVE_POINTS = 50


def evaluation_settings(evaluation: Evaluation) -> dict:
    return asdict(evaluation)


def check_cells(cells: list[Cell], evaluation: Evaluation) -> None:
    """Refuse a cell folder that holds a run made with other settings (before any training)."""
    settings = evaluation_settings(evaluation)
    for cell in cells:
        path = cell.run_dir / CELL_FILE
        if not path.is_file():
            continue
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = None
        if stored != cell.identity(settings):
            raise BytelmError(
                f"{cell.run_dir}: this cell was run with other settings ({CELL_FILE} differs); "
                "remove the folder or choose another --out"
            )


def _eval_files(evaluation: Evaluation) -> list[str]:
    files = [TEST_BPB, CHUNKER]
    return files + ([HELDOUT_BPB] if evaluation.heldout is not None else [])


def cell_done(cell: Cell, evaluation: Evaluation) -> bool:
    """Trained to the end and scored on every evaluation."""
    return run_finished(cell.run_dir) and all(
        (cell.run_dir / EVAL / name).is_file() for name in _eval_files(evaluation)
    )


def _train(cell: Cell) -> int:
    from bytelm.training.cli import main as train

    return train([*cell.args, "--run-dir", str(cell.run_dir), "--resume", "auto"])


def _evaluate(cell: Cell, evaluation: Evaluation) -> None:
    """The evaluations of a trained cell, each written atomically as it is computed."""
    from bytelm.eval.bpb import evaluate_bpb, split_bytes, utf8_slice
    from bytelm.eval.chunker import chunker_stats
    from bytelm.eval.loading import load_for_eval
    from bytelm.eval.run import write_json

    loaded = load_for_eval(cell.run_dir)
    corpus = read_summary(cell.run_dir)["data_dir"]
    out = cell.run_dir / EVAL
    write_json(out / TEST_BPB, evaluate_bpb(loaded, corpus, "test", evaluation.test_bytes))
    if evaluation.heldout is not None:
        h = evaluation.heldout
        write_json(out / HELDOUT_BPB,
                   {"name": h.name, **evaluate_bpb(loaded, h.source, h.split, h.bytes)})
    test = utf8_slice(bytes(split_bytes(corpus, "test")[: evaluation.test_bytes]))
    write_json(out / CHUNKER, {"stats": chunker_stats(loaded, test)})


def recorded_rows(cells: list[Cell], evaluation: Evaluation, out: Path) -> dict[str, dict]:
    """{cell id: row} of the finished rows in OUT/results.json that stand for cells without a
    folder in OUT, each with the cell's identity stored in it."""
    stored = (_read_json(out / RESULTS) or {}).get("rows") or []
    settings = evaluation_settings(evaluation)
    by_id = {row.get("cell"): row for row in stored if row.get("status") == "done"}
    return {
        cell.id: by_id[cell.id] for cell in cells
        if cell.id in by_id and not cell.run_dir.exists()
        and by_id[cell.id].get("identity") == cell.identity(settings)
    }


def run_cells(
    cells: list[Cell],
    evaluation: Evaluation,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    recorded: frozenset[str] = frozenset(),
) -> tuple[dict[str, str], int | None]:
    """Train and score every cell not done yet and not in `recorded` (cells whose results.json
    row stands for them): ({cell id: "skipped" | "recorded" | "trained" | "failed: REASON"}, the
    exit code of an interrupted cell or None)."""
    settings = evaluation_settings(evaluation)
    states: dict[str, str] = {}
    for i, cell in enumerate(cells, 1):
        head = f"[study {i}/{len(cells)}] {cell.id}"
        if cell.id in recorded:
            states[cell.id] = "recorded"
            log(f"{head}: done (its row in {RESULTS}; no folder here)")
            continue
        if cell_done(cell, evaluation):
            states[cell.id] = "skipped"
            log(f"{head}: already done")
            continue
        log(f"{head}: training {cell.steps} steps ({cell.budget:,} bytes asked)")
        cell.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cell.run_dir / CELL_FILE, cell.identity(settings))
        try:
            code = 0 if run_finished(cell.run_dir) else _train(cell)
            if code in INTERRUPTED:
                states[cell.id] = "interrupted"
                return states, code
            if code != 0:
                raise BytelmError(f"training exited with code {code}")
            _evaluate(cell, evaluation)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failed cell is reported; the study goes on
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            states[cell.id] = f"failed: {first}"
            log(f"{head}: FAILED ({first})")
            continue
        states[cell.id] = "trained"
        log(f"{head}: done")
    return states, None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compression_curve(run_dir: Path) -> list[list[float]]:
    """[[step, bytes per chunk at stage 0, ...], ...] from metrics.csv, at most CURVE_POINTS."""
    try:
        with (run_dir / METRICS).open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    columns = sorted(c for c in (rows[0] if rows else {}) if c.startswith("train/compression_s"))
    points = [
        [float(r["step"]), *(float(r[c]) for c in columns)]
        for r in rows if columns and r.get(columns[0])
    ]
    stride = max(1, -(-len(points) // CURVE_POINTS))
    kept = points[::stride]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def cell_row(cell: Cell, state: str | None, out: Path, evaluation: Evaluation) -> dict | None:
    """The results.json row of a cell: finished, failed now, or None (not run yet)."""
    summary = read_summary(cell.run_dir)
    finished = summary is not None and not summary.get("interrupted")
    if not finished and (state is None or not state.startswith("failed")):
        return None
    row = {"cell": cell.id, "arm": cell.arm, "series": cell.series, "seed": cell.seed,
           "budget": cell.budget, "lr": cell.lr, "steps": cell.steps,
           "run_dir": str(cell.run_dir.relative_to(out)) if cell.run_dir.is_relative_to(out)
           else str(cell.run_dir), "identity": cell.identity(evaluation_settings(evaluation))}
    if not finished:
        return {**row, "status": state}
    test = _read_json(cell.run_dir / EVAL / TEST_BPB) or {}
    heldout = _read_json(cell.run_dir / EVAL / HELDOUT_BPB) or {}
    chunker = (_read_json(cell.run_dir / EVAL / CHUNKER) or {}).get("stats") or {}
    fpb = summary.get("flops_per_byte_actual")
    seen = summary.get("bytes_seen")
    return {
        **row,
        "status": "done" if test else (state or "not scored"),
        "kind": summary.get("kind"),
        "target_compression": cell.recipe["model"]["config"].get("target_compression"),
        "params_non_embedding": summary.get("params_non_embedding"),
        "flops_per_byte": fpb,
        "flops_per_byte_planned": summary.get("flops_per_byte"),
        "bytes": seen,
        "training_flops": fpb * seen if fpb and seen else None,
        "wall_s": summary.get("wall_s"),
        "final_val_bpb": summary.get("final_val_bpb"),
        "test_bpb": test.get("bpb"),
        "test_bytes": test.get("bytes"),
        "heldout_bpb": heldout.get("bpb"),
        "heldout_bytes": heldout.get("bytes"),
        "compression_train": summary.get("compression"),
        "compression_test": chunker.get("compression"),
        **{key: chunker.get(key) for key in ALIGNMENT_KEYS},
        "compression_curve": compression_curve(cell.run_dir),
    }
