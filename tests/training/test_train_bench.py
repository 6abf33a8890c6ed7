"""`bytelm bench train` on a pair of tiny recipes: one JSON with both models, their rounds taken
in turn, and the median of the per-round ratios."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from train_helpers import baseline_recipe, hybrid_recipe, write_recipe

from bytelm.training.bench import main as bench


def test_bench_train_writes_both_models_and_their_ratio(tmp_path: Path, byte_folder: Path,
                                                        token_folder: Path, capsys):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    write_recipe(recipes / "tiny-hybrid.yaml", hybrid_recipe(byte_folder))
    write_recipe(recipes / "tiny-baseline.yaml", baseline_recipe(token_folder))
    out = tmp_path / "bench.json"
    assert bench(["--pair", "tiny", "--rounds", "3", "--steps", "1", "--warmup", "1", "--device", "cpu",
                  "--compile", "off", "--recipes", str(recipes), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    hybrid, baseline = result["models"]
    assert (hybrid["kind"], baseline["kind"]) == ("hybrid", "baseline")
    assert hybrid["batch_bytes"] == 2 * 64 and baseline["batch_bytes"] == 4 * 96
    for row in (hybrid, baseline):
        assert row["bytes_per_s"] > 0 and row["peak_memory_mb"] > 0 and not row["compiled"]
        assert len(row["round_bytes_per_s"]) == 3
        assert row["bytes_per_s"] == statistics.median(row["round_bytes_per_s"])
        assert row["bytes_per_s"] == pytest.approx(row["batch_bytes"] / row["step_s"])
        assert row["mfu"] == pytest.approx(row["achieved_flops"] / 190e9)
    ratios = [h / b for h, b in zip(hybrid["round_bytes_per_s"], baseline["round_bytes_per_s"])]
    assert result["round_ratios"] == ratios
    assert result["bytes_per_s_ratio"] == statistics.median(ratios)
    assert "hybrid / baseline bytes/s" in capsys.readouterr().out
