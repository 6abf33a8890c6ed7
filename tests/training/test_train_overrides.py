"""Overrides apply to every key of a recipe, typed as in the recipe, wherever they stand."""

from __future__ import annotations

import json
from pathlib import Path

from run_helpers import single_thread, train_run
from train_helpers import hybrid_recipe, write_recipe

from bytelm.training.cli import main as train


def test_numeric_and_list_overrides_of_the_model_config_take_effect(
    tmp_path: Path, byte_folder: Path
):
    run = train_run(
        tmp_path, "run", hybrid_recipe(byte_folder, max_steps=1, val_check_interval=1),
        "--model.config.d_model", "[16, 32]", "--model.config.ssm_d_state", "8",
        "--model.config.layout", '["m1", ["M1"], "m1"]',
    )
    config = json.loads((run / "model_config.json").read_text())
    assert config["d_model"] == [16, 32] and config["ssm_d_state"] == 8
    assert config["layout"] == ["m1", ["M1"], "m1"]


def test_a_flag_before_config_applies_over_the_recipe(tmp_path: Path, byte_folder: Path):
    config = write_recipe(tmp_path / "r.yaml", hybrid_recipe(byte_folder))  # 4 steps
    run = tmp_path / "run"
    with single_thread():
        assert train(["--trainer.max_steps", "2", "--config", str(config), "--run-dir", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
