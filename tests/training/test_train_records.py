"""What a run records is what happened: the corpus it trained on, one set of rows however it
was started, and a finished run left untouched by a second `--resume auto`."""

from __future__ import annotations

import json
from pathlib import Path

from run_helpers import train_run
from train_helpers import baseline_recipe, losses, read_metrics

from bytelm.checkpoint import load_run


def test_summary_names_the_data_path_it_trained_on(tmp_path: Path, token_folder: Path):
    recipe = baseline_recipe(token_folder, max_steps=2, val_check_interval=2)
    recipe["data"]["corpus"] = "gutenberg"  # the recipe's corpus, overridden by data.path
    run = train_run(tmp_path, "run", recipe)
    manifest = json.loads((token_folder / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["corpus"] == manifest["source"]["path"] != "gutenberg"
    assert load_run(run).meta["corpus"] == summary["corpus"]


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path, token_folder: Path, capfd):
    recipe = baseline_recipe(token_folder)
    run = train_run(tmp_path, "run", recipe)
    before = {name: (run / name).read_bytes() for name in ("summary.json", "metrics.csv")}
    capfd.readouterr()
    train_run(tmp_path, "run", recipe, "--resume", "auto")
    assert "nothing to do" in capfd.readouterr().err
    for name, data in before.items():
        assert (run / name).read_bytes() == data, name


def test_a_fresh_start_replaces_the_metrics_of_an_attempt_without_checkpoint(
    tmp_path: Path, token_folder: Path
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,train/loss,stale\n0,9.0,1\n1,8.0,1\n")
    (run / "summary.json").write_text("{}")
    train_run(tmp_path, "run", baseline_recipe(token_folder))
    rows = read_metrics(run)
    assert "stale" not in rows[0]
    assert sum(1 for r in rows if r.get("train/loss")) == 10 and sorted(losses(run)) == list(range(10))
