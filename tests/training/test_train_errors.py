"""Every mistake `bytelm train` can find while it reads the recipe and the flags is one line on
stderr and exit code 2, before anything is written; `--help` lists bytelm's own keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import baseline_recipe, write_recipe

from bytelm.cli import main as bytelm

# (id, extra flags, a fragment of the one line). `{text}` is a text file, `{nowhere}` a path
# that does not exist.
MISTAKES = [
    ("negative-lr", ["--model.optimizer.lr", "-1"], "model.optimizer.lr -1.0: must be > 0"),
    ("beta-out-of-range", ["--model.optimizer.beta1", "1.5"], "optimizer.beta1 1.5"),
    ("decay-fraction", ["--model.schedule.decay_fraction", "2"], "schedule.decay_fraction 2"),
    ("negative-seed", ["--seed_everything", "-1"], "--seed_everything -1"),
    ("seed-not-int", ["--seed_everything", "abc"], "--seed_everything"),
    ("gpu-on-cpu", ["--trainer.accelerator", "gpu"], "--trainer.accelerator gpu: this machine"),
    ("resume-text-file", ["--resume", "{text}"], "not an intact checkpoint"),
    ("resume-missing", ["--resume", "{nowhere}"], "no such checkpoint"),
    ("lightning-optimizer", ["--optimizer", "Adam"], "--model.optimizer"),
    ("lightning-scheduler", ["--lr_scheduler", "StepLR"], "--lr_scheduler"),
    ("typo", ["--trainer.max_stpes", "5"], "unknown option --trainer.max_stpes"),
    ("abbreviated", ["--trainer.max_step", "5"], "unknown option --trainer.max_step"),
    ("unknown-section", ["--nosuch.key", "1"], "unknown option --nosuch.key"),
    ("batch-size-not-int", ["--data.batch_size", "abc"], "--data.batch_size abc"),
    ("batch-size-zero", ["--data.batch_size", "0"], "batch_size"),
    ("data-path-missing", ["--data.path", "{nowhere}"], "not a prepared folder"),
    ("model-kind", ["--model.config.kind", "weird"], "weird"),
    ("d-model-not-int", ["--model.config.d_model", "x"], "d_model"),
    ("vocab-differs", ["--model.config.vocab_size", "2048"], "2048 != tokenizer vocab_size"),
    ("recipe-missing", ["--config", "{nowhere}"], "nowhere"),
    ("max-steps-zero", ["--trainer.max_steps", "0"], "--trainer.max_steps 0"),
    ("keep-zero", ["--checkpoint.keep", "0"], "checkpoint.keep 0"),
    ("seq-len-too-long", ["--data.seq_len", "100000"], "max_seq_len"),
]


@pytest.mark.parametrize("case", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_train_mistake_is_one_line_and_writes_nothing(case, tmp_path: Path, token_folder, capfd):
    name, flags, fragment = case
    if name == "gpu-on-cpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    subs = {"{text}": str(text), "{nowhere}": str(tmp_path / "nowhere")}
    flags = [subs.get(f, f) for f in flags]
    config = write_recipe(tmp_path / "r.yaml", baseline_recipe(token_folder))
    run_dir = tmp_path / "run"
    capfd.readouterr()
    code = bytelm(["train", "--config", str(config), "--run-dir", str(run_dir), *flags])
    out, err = capfd.readouterr()
    assert code == 2, err
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("bytelm train: error: ") and fragment in err, err
    assert not run_dir.exists()


def test_train_help_lists_bytelm_keys(capsys):
    assert bytelm(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 80
    for key in ("--config", "--run-dir", "--resume", "--model.optimizer.lr",
                "--model.schedule.warmup_steps", "--data.path", "--trainer.max_steps",
                "--checkpoint.every_n_steps"):
        assert key in out, key
    assert "--optimizer " not in out and "--lr_scheduler" not in out
