"""`bytelm train` end to end on a tiny baseline: run-dir layout, determinism, exact resume after
SIGKILL (baseline and hybrid), DDP on two CPU processes, and the bytes-per-token check against
the data manifest."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import (
    baseline_recipe,
    bytes_per_token,
    hybrid_recipe,
    losses,
    read_metrics,
    write_recipe,
)

from bytelm.errors import BytelmError
from bytelm.training.cli import main as train

REPO = Path(__file__).resolve().parents[2]
BYTELM = [sys.executable, "-m", "bytelm.cli", "train"]


def _run(tmp_path: Path, name: str, recipe: dict, *extra: str) -> Path:
    run_dir = tmp_path / name
    config = write_recipe(tmp_path / f"{name}.yaml", recipe)
    assert train(["--config", str(config), "--run-dir", str(run_dir), *extra]) == 0
    return run_dir


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, token_folder: Path) -> Path:
    return _run(tmp_path_factory.mktemp("runs"), "base", baseline_recipe(token_folder))


def test_run_dir_layout_metrics_and_summary(baseline_run: Path, token_folder: Path):
    names = {p.name for p in baseline_run.iterdir()}
    assert {"config.yaml", "model_config.json", "metrics.csv", "checkpoints", "tokenizer.model",
            "summary.json"} <= names
    assert (baseline_run / "tokenizer.model").read_bytes() == (token_folder / "tokenizer.model").read_bytes()
    assert json.loads((baseline_run / "model_config.json").read_text())["kind"] == "baseline"

    rows = read_metrics(baseline_run)
    columns = set(rows[0])
    assert {"step", "train/loss", "train/bpb", "train/bytes_per_s", "train/tokens_per_s", "lr",
            "grad_norm", "val/bpb"} <= columns
    assert sorted(losses(baseline_run)) == list(range(10))
    assert sum(1 for r in rows if r["val/bpb"]) == 2  # at step 5 and step 10

    state = _weights(baseline_run)
    assert state and all(k.startswith("model.") for k in state)
    assert (baseline_run / "checkpoints" / "step-0000010.ckpt").is_file()

    summary = json.loads((baseline_run / "summary.json").read_text())
    assert summary["kind"] == "baseline" and summary["steps"] == 10 and summary["seed"] == 7
    assert summary["params"] > summary["params_non_embedding"] > 0
    # 10 steps x 4 windows x round(96 / bytes_per_token) tokens, counted in their UTF-8 bytes
    nominal = 10 * 4 * 96
    assert abs(summary["bytes_seen"] - nominal) < 0.1 * nominal
    bpt = bytes_per_token(token_folder)
    assert summary["flops_per_byte_actual"] == pytest.approx(summary["flops_per_byte"], rel=0.1)
    assert 0 < summary["final_val_bpb"] < 8 and bpt > 1
    for key in ("data_dir", "corpus", "recipe", "wall_s", "hardware", "mfu"):
        assert key in summary


def test_hybrid_run_logs_compression_and_flops_as_trained(tmp_path: Path, byte_folder: Path):
    run_dir = _run(tmp_path, "hybrid", hybrid_recipe(byte_folder))
    rows = read_metrics(run_dir)
    compression = [float(r["train/compression_s0"]) for r in rows if r.get("train/compression_s0")]
    assert len(compression) == 4 and all(c >= 1.0 for c in compression)
    for name in ("precision", "recall"):
        values = [float(r[f"train/word_start_{name}_s0"]) for r in rows if r.get("train/compression_s0")]
        assert len(values) == 4 and all(0 <= v <= 1 for v in values) and max(values) > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["kind"] == "hybrid" and not (run_dir / "tokenizer.model").exists()
    assert summary["compression"][0] == pytest.approx(4 / sum(1 / c for c in compression), rel=1e-5)
    assert summary["bytes_seen"] == 4 * 2 * 64
    assert summary["final_val_bpb"] > 0


def test_two_runs_log_identical_losses(baseline_run: Path, tmp_path: Path, token_folder: Path):
    again = _run(tmp_path, "again", baseline_recipe(token_folder))
    assert losses(again) == losses(baseline_run)


def test_existing_checkpoints_need_resume(baseline_run: Path, tmp_path: Path, token_folder: Path):
    config = write_recipe(tmp_path / "r.yaml", baseline_recipe(token_folder))
    with pytest.raises(BytelmError, match="--resume auto"):
        train(["--config", str(config), "--run-dir", str(baseline_run)])


def test_bytes_per_token_far_from_the_manifest_is_refused(tmp_path: Path, token_folder: Path):
    recipe = baseline_recipe(token_folder)
    measured = bytes_per_token(token_folder)
    wrong = round(measured * 1.2, 3)
    recipe["model"]["config"]["bytes_per_token"] = wrong
    config = write_recipe(tmp_path / "r.yaml", recipe)
    with pytest.raises(BytelmError, match=rf"{wrong}.*{measured:.4f}"):
        train(["--config", str(config), "--run-dir", str(tmp_path / "run")])


@pytest.fixture
def one_thread():
    """In-process runs on one thread, like the OMP_NUM_THREADS=1 subprocesses they are compared
    with: another thread count changes the order of float sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["baseline", "hybrid"])
def test_resume_after_sigkill_equals_uninterrupted_run(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest, one_thread
):
    """The hybrid adds dynamic chunking, the compression sums and its byte sampler position."""
    if kind == "baseline":
        recipe = baseline_recipe(request.getfixturevalue("token_folder"), max_steps=40,
                                 val_check_interval=20)
    else:
        recipe = hybrid_recipe(request.getfixturevalue("byte_folder"), max_steps=40,
                               val_check_interval=20)
    recipe["checkpoint"] = {"every_n_steps": 20}
    reference = _run(tmp_path, "reference", recipe)

    killed = tmp_path / "killed"
    config = write_recipe(tmp_path / "killed.yaml", recipe)
    proc = subprocess.Popen([*BYTELM, "--config", str(config), "--run-dir", str(killed),
                             "--trainer.callbacks+=pause_probe.PauseAt",
                             "--trainer.callbacks.step=20"],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    half = killed / "checkpoints" / "step-0000020.ckpt"
    paused = killed / "paused"
    deadline = time.monotonic() + 600
    while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert half.exists() and not (killed / "summary.json").exists()

    assert train(["--config", str(config), "--run-dir", str(killed), "--resume", "auto"]) == 0
    want, got = losses(reference), losses(killed)
    assert sorted(got) == list(range(40))
    for step in range(20, 40):
        assert got[step] == pytest.approx(want[step], abs=1e-6), step
    ref_w, got_w = _weights(reference), _weights(killed)
    assert ref_w.keys() == got_w.keys()
    for name in ref_w:
        torch.testing.assert_close(got_w[name], ref_w[name], atol=1e-6, rtol=0)
    want_s, got_s = (json.loads((d / "summary.json").read_text()) for d in (reference, killed))
    assert got_s["bytes_seen"] == want_s["bytes_seen"]
    assert got_s["final_val_bpb"] == pytest.approx(want_s["final_val_bpb"], abs=1e-6)
    if kind == "hybrid":
        compression = [float(r["train/compression_s0"]) for r in read_metrics(killed)
                       if r.get("train/compression_s0")]
        assert len(compression) == 40
        assert got_s["compression"] == pytest.approx(want_s["compression"], abs=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_draw_disjoint_windows(tmp_path: Path, token_folder: Path):
    recipe = baseline_recipe(token_folder, max_steps=6, val_check_interval=6)
    recipe["checkpoint"] = {"every_n_steps": 3}
    config = write_recipe(tmp_path / "ddp.yaml", recipe)
    run_dir = tmp_path / "ddp"
    env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    result = subprocess.run(
        [*BYTELM, "--config", str(config), "--run-dir", str(run_dir),
         "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2",
         "--trainer.callbacks+=window_probe.RecordWindows"],
        env=env, capture_output=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    ranks = [json.loads((run_dir / f"windows-rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(ranks[0]) == sorted(ranks[1]) == [str(i) for i in range(6)]
    for step in ranks[0]:
        assert len(ranks[0][step]) == 4 and len(ranks[1][step]) == 4
        assert not set(ranks[0][step]) & set(ranks[1][step]), step
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 6
    assert summary["bytes_seen"] == pytest.approx(2 * 6 * 4 * 96, rel=0.1)  # both ranks count

    from bytelm.config import config_from_dict
    from bytelm.models import build_model

    model = build_model(config_from_dict(json.loads((run_dir / "model_config.json").read_text())))
    state = {k.removeprefix("model."): v for k, v in _weights(run_dir).items()}
    model.load_state_dict(state)
    assert torch.isfinite(model(torch.zeros(1, 8, dtype=torch.long)).logits).all()
