"""`bytelm demo`: the whole mission on one CPU machine, everything under `runs/demo/`.

1. prepare the Gutenberg corpus: byte shards, the baseline's BPE tokenizer and token shards;
2. train `tiny-hybrid` and `tiny-baseline` (matched FLOPs per byte, equal bytes; capped by
   steps, so the figures reproduce);
3. evaluate both: test-split bits per byte, the zero-shot group, the character suite,
   robustness and recall (with the documented per-task limits below);
4. release both as safetensors folders with model cards;
5. write `runs/demo/REPORT.md` with its plots.

Every stage runs as its own `bytelm` command in a child process, so a stage's output is exactly
what a user running that command would see. A stage whose result is already on disk is skipped,
so a rerun after an interruption continues where it stopped: a training run counts as done only
when its summary says it finished (one stopped by SIGINT or SIGTERM says it was interrupted, and
the rerun resumes it). An interrupted stage stops the demo with that stage's exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bytelm.errors import BytelmError
from bytelm.run_dir import SUMMARY, run_finished

# Exit codes of a stage stopped by SIGINT or SIGTERM: the demo stops with the same code.
INTERRUPTED = (130, 143)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

RECIPES = ("tiny-hybrid", "tiny-baseline")
# Documents per zero-shot task in the demo's evaluation (the first N of each task's split).
EVAL_LIMIT = 50
# Character suite and recall: fewer documents, since they generate or score long contexts.
EVAL_LIMIT_CHARS = 5
EVAL_LIMIT_RECALL = 5
# Test-split bytes scored for bits per byte, and per robustness perturbation (a fixed slice
# from the start of the split).
EVAL_BPB_BYTES = 100_000
EVAL_ROBUST_BYTES = 10_000


@dataclass(frozen=True)
class Stage:
    """One step of the demo: a `bytelm` command and the file that proves it finished (None:
    cheap enough to run every time)."""

    title: str
    argv: list[str]
    done_when: Path | None

    def done(self) -> bool:
        """True when the stage's proof is on disk (a run summary: one of a finished run)."""
        if self.done_when is None or not self.done_when.exists():
            return False
        return self.done_when.name != SUMMARY or run_finished(self.done_when.parent)


def _recipe_dir() -> Path:
    """recipes/ of the source tree (the demo runs from a clone)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "recipes" / f"{RECIPES[0]}.yaml").is_file():
            return base / "recipes"
    raise BytelmError("recipes/tiny-hybrid.yaml not found: run the demo from the bytelm clone")


def _baseline_vocab(recipe: Path) -> int:
    return int(yaml.safe_load(recipe.read_text())["model"]["config"]["vocab_size"])


def stages(out: Path, recipes: Path, max_steps: int | None = None) -> list[Stage]:
    """The demo's stages, in order, with the run folders they write."""
    steps = [] if max_steps is None else ["--trainer.max_steps", str(max_steps)]
    data = out / "data"
    vocab = _baseline_vocab(recipes / "tiny-baseline.yaml")
    plan = [
        Stage(
            "prepare gutenberg (byte shards, BPE tokenizer, token shards)",
            [
                "prepare",
                "--corpus",
                "gutenberg",
                "--tokenizer",
                "bpe",
                "--vocab-size",
                str(vocab),
                "--out",
                str(data),
            ],
            data / "manifest.json",
        )
    ]
    for name in RECIPES:
        run = out / name
        plan.append(
            Stage(
                f"train {name}",
                [
                    "train",
                    "--config",
                    str(recipes / f"{name}.yaml"),
                    "--run-dir",
                    str(run),
                    "--resume",
                    "auto",
                    "--data.path",
                    str(data),
                    *steps,
                ],
                run / SUMMARY,
            )
        )
    for name in RECIPES:
        run = out / name
        plan.append(
            Stage(
                f"evaluate {name}",
                [
                    "eval",
                    "all",
                    str(run),
                    "--corpus",
                    str(data),
                    "--out",
                    str(run / "eval"),
                    "--limit",
                    str(EVAL_LIMIT),
                    "--limit-chars",
                    str(EVAL_LIMIT_CHARS),
                    "--limit-recall",
                    str(EVAL_LIMIT_RECALL),
                    "--bpb-bytes",
                    str(EVAL_BPB_BYTES),
                    "--robust-bytes",
                    str(EVAL_ROBUST_BYTES),
                ],
                run / "eval" / "recall.json",
            )
        )
    for name in RECIPES:
        release = out / "release" / name
        plan.append(
            Stage(
                f"release {name}",
                ["release", str(out / name), "--out", str(release)],
                release / "checksums.sha256",
            )
        )
    plan.append(
        Stage(
            "report",
            ["report", *(str(out / name) for name in RECIPES), "--out", str(out)],
            None,
        )
    )
    return plan


def _wait_forwarding_signals(proc: subprocess.Popen) -> int:
    """Wait for a stage; a SIGINT or SIGTERM sent to the demo goes on to the stage, which saves
    its work and exits, instead of the demo dying (or killing the stage) mid-write."""
    forward = lambda signum, frame: proc.send_signal(signum)  # noqa: E731
    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StageInterrupted(Exception):
    """A stage stopped by a signal; `code` is its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _run(stage: Stage, index: int, total: int, env: dict[str, str]) -> float:
    print(f"\n[demo {index}/{total}] {stage.title}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    returncode = _wait_forwarding_signals(
        subprocess.Popen([sys.executable, "-m", "bytelm.cli", *stage.argv], env=env)
    )
    seconds = time.perf_counter() - start
    if returncode in INTERRUPTED or returncode < 0:
        raise StageInterrupted(returncode if returncode > 0 else 128 - returncode)
    if returncode != 0:
        raise BytelmError(
            f"stage '{stage.title}' failed with exit code {returncode} (its output is above)"
        )
    print(f"[demo {index}/{total}] {stage.title}: done in {seconds:.0f} s", file=sys.stderr)
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bytelm demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="train each model for this many steps instead of its recipe's (a quick look)",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("BYTELM_DATA_DIR"):
        raise BytelmError("BYTELM_DATA_DIR is not set: point it at the local data folder")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BYTELM_CACHE": os.environ.get("BYTELM_CACHE", str(out / "cache"))}
    plan = stages(out, _recipe_dir(), args.max_steps)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for index, stage in enumerate(plan, 1):
        if stage.done():
            print(f"[demo {index}/{len(plan)}] {stage.title}: already done", file=sys.stderr)
            continue
        try:
            timings[stage.title] = _run(stage, index, len(plan), env)
        except StageInterrupted as stop:
            print(
                f"demo: stage '{stage.title}' was interrupted (exit code {stop.code}); rerun "
                "`bytelm demo` to continue where it stopped",
                file=sys.stderr,
            )
            return stop.code
    total = time.perf_counter() - start
    print(f"\ndemo finished in {total / 60:.1f} min; everything is under {out}", file=sys.stderr)
    for title, seconds in timings.items():
        print(f"  {seconds:7.0f} s  {title}", file=sys.stderr)
    print(f"  report:   {out / 'REPORT.md'}", file=sys.stderr)
    for name in RECIPES:
        print(f"  {name}: run {out / name}, release {out / 'release' / name}", file=sys.stderr)
    return 0
