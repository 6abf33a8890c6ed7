"""`bytelm study STUDY.yaml [--out DIR] [--only PATTERN]`: arms x seeds x budgets, resumable.

Every cell is an ordinary run directory (`OUT/cells/<cell>/`) trained by `bytelm train`'s code
and scored by `bytelm eval bpb`'s code (`bytelm.study.run`); finished cells are skipped, so a
rerun continues an interrupted study, and a cell without a folder whose finished row (same
identity) is in OUT/results.json counts as done, so a study continues on another machine from a
copy of its results.json. The study file, every arm's overrides (through the
training command's parser) and every existing cell folder are checked before the first cell
trains. Then OUT/results.json (one row per finished or failed cell) and OUT/STUDY.md with its
plots (`bytelm.study.report`) cover every cell on disk, also those `--only` left out this time.
The exit code is 0 when every cell asked for finished, 1 when one failed, 130/143 when a signal
stopped it.
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

from bytelm.commands.arguments import ArgumentParser
from bytelm.errors import BytelmError


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="bytelm study",
        description="Train and evaluate every cell of a study (arms x seeds x budgets, learning-"
        "rate sweeps), then write results.json and STUDY.md with plots.",
    )
    parser.add_argument("study", help="study YAML, or a name in recipes/studies/")
    parser.add_argument("--out", type=Path, help="output folder (default runs/studies/<name>)")
    parser.add_argument("--only", metavar="PATTERN",
                        help="train only cells whose name matches this glob (e.g. 'hybrid-*-s1')")
    return parser


def run_study(study_path: str | Path, out: Path | None = None, only: str | None = None,
              log=lambda line: print(line, file=sys.stderr, flush=True)) -> tuple[dict, int, Path]:
    """Check, run and report a study: ({cell id: state}, exit code, the output folder)."""
    from bytelm.study.plan import plan, recipe_label
    from bytelm.study.report import write_report
    from bytelm.study.run import cell_row, check_cells, recorded_rows, run_cells
    from bytelm.study.spec import load_study

    study = load_study(study_path)
    out = Path(out or Path("runs") / "studies" / study.name).resolve()
    if out.exists() and not out.is_dir():
        raise BytelmError(f"--out {out} exists and is not a folder")
    cells = plan(study, out)
    chosen = [c for c in cells if only is None or fnmatch.fnmatchcase(c.id, only)]
    if not chosen:
        raise BytelmError(f"--only {only}: matches no cell (cells look like {cells[0].id})")
    check_cells(cells, study.evaluation)
    out.mkdir(parents=True, exist_ok=True)
    recorded = recorded_rows(cells, study.evaluation, out)
    states, stopped = run_cells(chosen, study.evaluation, log, frozenset(recorded))
    rows = [row for c in cells if (row := recorded.get(c.id)
                                   or cell_row(c, states.get(c.id), out, study.evaluation))]
    missing = [c.id for c in cells if c.id not in {r["cell"] for r in rows}]
    write_report(study, rows, missing, out, recipe_label(study.path))
    if stopped is not None:
        log(f"study: stopped (exit code {stopped}); rerun the same command to continue")
        return states, stopped, out
    failed = [cell for cell, state in states.items() if state.startswith("failed")]
    return states, 1 if failed else 0, out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    states, code, out = run_study(args.study, args.out, args.only)
    trained = sum(s == "trained" for s in states.values())
    failed = sum(s.startswith("failed") for s in states.values())
    skipped = sum(s in ("skipped", "recorded") for s in states.values())
    print(f"bytelm study: {trained} cells trained, {skipped} already done, {failed} failed; "
          f"{out}/results.json and STUDY.md", file=sys.stderr)
    return code
