"""A damaged newest checkpoint is passed over: `--resume auto` falls back to the newest intact
one with one line and resumes exactly, retention never keeps a damaged checkpoint over an intact
one, `last.ckpt` is no hard link, and loading a run dir for release takes the newest intact
step checkpoint when `last.ckpt` is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from run_helpers import assert_same_run, train_run
from train_helpers import baseline_recipe, write_recipe

from bytelm.checkpoint import load_run
from bytelm.cli import main as bytelm
from bytelm.run_dir import checkpoint_problem, step_checkpoints


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, token_folder: Path) -> Path:
    """Ten steps with checkpoints at 5 and 10."""
    return train_run(tmp_path_factory.mktemp("ref"), "reference", baseline_recipe(token_folder))


def test_truncated_newest_checkpoint_falls_back_and_resumes_exactly(
    tmp_path, token_folder, reference, capfd
):
    recipe = baseline_recipe(token_folder)
    run = train_run(tmp_path, "run", recipe)
    folder = run / "checkpoints"
    assert os.path.islink(folder / "last.ckpt")
    assert os.readlink(folder / "last.ckpt") == "step-0000010.ckpt"
    _truncate(folder / "step-0000010.ckpt")
    assert checkpoint_problem(folder / "step-0000005.ckpt") is None  # damage stays in one file

    capfd.readouterr()
    train_run(tmp_path, "run", recipe, "--resume", "auto")
    notes = [line for line in capfd.readouterr().err.splitlines() if "damaged" in line]
    assert len(notes) == 1, notes
    assert "step-0000010.ckpt" in notes[0] and "using step-0000005.ckpt" in notes[0]
    assert_same_run(run, reference, from_step=5, steps=10)
    kept = step_checkpoints(folder)
    assert [p.name for p in kept] == ["step-0000005.ckpt", "step-0000010.ckpt"]
    assert all(checkpoint_problem(p) is None for p in kept)


def test_manual_resume_from_older_checkpoint_never_keeps_the_damaged_one(tmp_path, token_folder):
    recipe = baseline_recipe(token_folder, max_steps=15)
    run = train_run(tmp_path, "run", recipe)
    folder = run / "checkpoints"
    _truncate(folder / "step-0000015.ckpt")
    train_run(tmp_path, "run", recipe, "--resume", str(folder / "step-0000010.ckpt"),
              "--trainer.max_steps", "13", "--checkpoint.every_n_steps", "3")
    kept = step_checkpoints(folder)
    assert [p.name for p in kept] == ["step-0000012.ckpt", "step-0000013.ckpt"]
    assert all(checkpoint_problem(p) is None for p in kept)
    assert os.readlink(folder / "last.ckpt") == "step-0000013.ckpt"


def test_every_checkpoint_damaged_is_one_line(tmp_path, token_folder, capfd):
    recipe = baseline_recipe(token_folder)
    run = train_run(tmp_path, "run", recipe)
    for path in step_checkpoints(run / "checkpoints"):
        _truncate(path)
    config = write_recipe(tmp_path / "run.yaml", recipe)
    capfd.readouterr()
    assert bytelm(["train", "--config", str(config), "--run-dir", str(run), "--resume", "auto"]) == 2
    out, err = capfd.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "no intact checkpoint" in err


def test_release_reads_newest_intact_step_checkpoint_without_last(tmp_path, reference, capfd):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run, symlinks=True)
    (run / "checkpoints" / "last.ckpt").unlink()
    _truncate(run / "checkpoints" / "step-0000010.ckpt")
    capfd.readouterr()
    loaded = load_run(run)
    err = capfd.readouterr().err
    assert "step-0000010.ckpt is damaged" in err and "using step-0000005.ckpt" in err
    assert loaded.model is not None
