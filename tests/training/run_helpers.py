"""Helpers of the tests that stop, damage and resume runs: in-process and child-process training
on one thread (so both sum floats in one order), and comparison of two runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from train_helpers import losses, write_recipe

from bytelm.training.cli import main as train

REPO = Path(__file__).resolve().parents[2]
BYTELM_TRAIN = [sys.executable, "-m", "bytelm.cli", "train"]


def child_env() -> dict[str, str]:
    """The environment of a `bytelm train` child: one thread, the test probes importable."""
    path = [str(Path(__file__).parent), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(path)}


@contextmanager
def single_thread() -> Iterator[None]:
    """Run in-process training on one thread, like the OMP_NUM_THREADS=1 children."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_run(tmp_path: Path, name: str, recipe: dict, *extra: str) -> Path:
    """Train `recipe` in-process on one thread into `tmp_path/name`; the run dir."""
    run_dir = tmp_path / name
    config = write_recipe(tmp_path / f"{name}.yaml", recipe)
    with single_thread():
        assert train(["--config", str(config), "--run-dir", str(run_dir), *extra]) == 0
    return run_dir


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(got: Path, want: Path, from_step: int, steps: int) -> None:
    """`got` logged the losses of `want` from `from_step` on and ended with its weights."""
    got_losses, want_losses = losses(got), losses(want)
    assert sorted(got_losses) == list(range(steps))
    for step in range(from_step, steps):
        assert got_losses[step] == pytest.approx(want_losses[step], abs=1e-6), step
    got_w, want_w = final_weights(got), final_weights(want)
    assert got_w.keys() == want_w.keys()
    for name in want_w:
        torch.testing.assert_close(got_w[name], want_w[name], atol=1e-6, rtol=0)
