"""SIGTERM and SIGINT stop `bytelm train` cleanly: a checkpoint at the current step, a summary
marked interrupted, exit 143 or 130, and `--resume auto` continues to the uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import torch
from run_helpers import BYTELM_TRAIN, assert_same_run, child_env, train_run
from train_helpers import baseline_recipe, write_recipe

from bytelm.commands.demo import Stage


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_exits_nonzero_and_resumes_exactly(
    tmp_path, token_folder, signum: signal.Signals
):
    recipe = baseline_recipe(token_folder, max_steps=12, val_check_interval=6)
    reference = train_run(tmp_path, "reference", recipe)

    stopped = tmp_path / "stopped"
    config = write_recipe(tmp_path / "stopped.yaml", recipe)
    result = subprocess.run(
        [*BYTELM_TRAIN, "--config", str(config), "--run-dir", str(stopped),
         "--trainer.callbacks+=signal_probe.SignalAt", "--trainer.callbacks.step=7",
         f"--trainer.callbacks.signum={int(signum)}"],
        env=child_env(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1].startswith(f"bytelm train: stopped by {signum.name}")
    assert "Traceback" not in result.stderr
    checkpoint = stopped / "checkpoints" / "step-0000007.ckpt"
    assert checkpoint.is_file()
    carried = torch.load(checkpoint, map_location="cpu", weights_only=False)["callbacks"]["RunClock"]
    interrupted = json.loads((stopped / "summary.json").read_text())
    assert interrupted["interrupted"] == signum.name and interrupted["steps"] == 7
    train_stage = Stage("train", [], stopped / "summary.json")
    assert not train_stage.done()  # the demo reruns (resumes) an interrupted training stage

    train_run(tmp_path, "stopped", recipe, "--resume", "auto")
    assert_same_run(stopped, reference, from_step=7, steps=12)
    finished = json.loads((stopped / "summary.json").read_text())
    assert finished["interrupted"] is None and finished["steps"] == 12 and train_stage.done()
    # wall time, throughput and MFU cover both segments: the resumed total starts from the wall
    # time the checkpoint carried (the interrupted summary also counts the seconds after that
    # checkpoint, which the resumed run redoes, so it is not a lower bound)
    assert 0 < carried["wall_s"] <= interrupted["wall_s"]
    assert finished["wall_s"] > carried["wall_s"]
    assert finished["bytes_per_s"] == pytest.approx(finished["bytes_seen"] / finished["wall_s"])
