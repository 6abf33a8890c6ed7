"""Training with the entropy rule: the threshold is calibrated on training bytes, reaches its
target on validation bytes, is stored in the run's config, and bad entropy settings are one line.

The entropy LM is a tiny random-initialised byte model saved to tmp_path (tests/models'
entropy_helpers), so every run takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from entropy_fixtures import entropy_hybrid, save_entropy_lm
from release_fixtures import tiny_model, train_tokenizer, write_run_dir
from train_helpers import hybrid_recipe, write_recipe

from bytelm.checkpoint import load_run
from bytelm.cli import main as bytelm
from bytelm.data.shards import load_shard
from bytelm.models.entropy_model import (
    calibrate,
    calibration_windows,
    compression_at,
    window_scores,
)

SEQ_LEN = 64


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    return save_entropy_lm(tmp_path_factory.mktemp("entropy-lm"))


def entropy_recipe(folder: Path, lm: Path, **config) -> dict:
    recipe = hybrid_recipe(folder)
    recipe["model"]["config"].update(chunking=["entropy"], entropy_model=str(lm), **config)
    return recipe


@pytest.mark.parametrize("mode,target", [("global", 3.0), ("relative", 2.5)])
def test_threshold_from_train_bytes_gives_the_target_on_val_bytes(byte_folder, lm_dir, mode, target):
    model = entropy_hybrid(lm_dir, entropy_mode=mode, entropy_threshold=None, target_compression=[target])
    cfg = model.config
    router = model.backbone.router
    record = calibrate(cfg, router, load_shard(byte_folder, "train"), SEQ_LEN)
    assert record["threshold"] == router.threshold and record["target"] == target
    assert abs(record["train_compression"] - target) < 0.01 * target
    val = calibration_windows(load_shard(byte_folder, "val"), SEQ_LEN, n_bytes=1 << 16)
    on_val = compression_at(window_scores(router, val), router.threshold)
    with torch.no_grad():
        aux = model(val[:64].to(torch.long)).aux
    assert abs(on_val - target) < 0.05 * target, on_val
    assert float(aux["compression"][0]) == pytest.approx(compression_at(window_scores(router, val[:64]), router.threshold))


def test_training_stores_the_calibration_and_a_loaded_run_chunks_the_same(tmp_path, byte_folder, lm_dir, capfd):
    recipe = write_recipe(tmp_path / "r.yaml", entropy_recipe(byte_folder, lm_dir, target_compression=[3.0]))
    run = tmp_path / "run"
    assert bytelm(["train", "--config", str(recipe), "--run-dir", str(run)]) == 0
    assert "entropy chunking (global): threshold" in capfd.readouterr().err
    stored = json.loads((run / "model_config.json").read_text())
    record = stored["entropy_calibration"]
    assert stored["entropy_threshold"] is None and record["target"] == 3.0 and record["seq_len"] == 64
    loaded = load_run(run).model
    assert loaded.backbone.router.threshold == record["threshold"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["flops_per_byte"] == pytest.approx(loaded.flops_per_byte(64))
    assert loaded.backbone.router.flops_per_byte(64) > 0


MISTAKES = [
    ("missing", dict(target_compression=[3.0]), "{nowhere}", "not found; make it with `bytelm train --config recipes/tiny-entropy-lm.yaml"),
    ("token-model", dict(target_compression=[3.0]), "{bpe}", "needs a byte model"),
    ("threshold-and-target", dict(target_compression=[3.0], entropy_threshold=2.0), "{lm}", "both given"),
    ("negative-threshold", dict(target_compression=[None], entropy_threshold=-1.0), "{lm}", "must be a non-negative"),
]


@pytest.mark.parametrize("case", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_entropy_mistake_is_one_line_and_writes_nothing(case, tmp_path, byte_folder, lm_dir, capfd):
    _, config, where, fragment = case
    paths = {"{nowhere}": tmp_path / "runs" / "tiny-entropy-lm", "{lm}": lm_dir}
    if where == "{bpe}":
        tokenizer = train_tokenizer(tmp_path)
        paths["{bpe}"] = write_run_dir(tiny_model("baseline", tokenizer), tmp_path / "bpe", tokenizer)
    recipe = write_recipe(tmp_path / "r.yaml", entropy_recipe(byte_folder, paths[where], **config))
    run = tmp_path / "run"
    capfd.readouterr()
    code = bytelm(["train", "--config", str(recipe), "--run-dir", str(run)])
    out, err = capfd.readouterr()
    assert code == 2, err
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("bytelm train: error: ") and fragment in err, err
    assert not run.exists()
