"""Shared set-up of the study tests: a prepared tinyshakespeare folder with bytes and BPE tokens,
and a writer of a two-arm study of tiny models trained for a few steps each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from train_helpers import TOKEN_VOCAB, baseline_recipe, hybrid_recipe, write_recipe  # noqa: E402

# Both arms see the same bytes per step: 2 windows of 64 bytes.
SHAPE = {"data.batch_size": 2, "data.seq_len": 64}


@pytest.fixture(scope="session")
def study_data(tmp_path_factory, data_dir: str) -> Path:
    from bytelm.data.prepare import prepare

    source = os.path.join(data_dir, "tinyshakespeare", "input.txt")
    out = tmp_path_factory.mktemp("study-data")
    return Path(prepare(source=source, out=out, tokenizer="bpe", vocab_size=TOKEN_VOCAB))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> None:
    """Held-out corpora are prepared into a cache of the test's own."""
    monkeypatch.setenv("BYTELM_CACHE", str(tmp_path / "cache"))


def write_study(tmp_path: Path, folder: Path, **changes) -> Path:
    """A study of the tiny hybrid and baseline over `folder`: two budgets (2 and 4 steps), two
    seeds, test bpb on 2 KB and bpb on a held-out slice; `changes` replace top-level keys."""
    hybrid = write_recipe(tmp_path / "hybrid.yaml", hybrid_recipe(folder))
    baseline = write_recipe(tmp_path / "baseline.yaml", baseline_recipe(folder))
    study = {
        "question": "Does the tiny hybrid beat the tiny baseline?",
        "arms": [{"name": "hybrid", "recipe": str(hybrid), "overrides": dict(SHAPE)},
                 {"name": "baseline", "recipe": str(baseline), "overrides": dict(SHAPE)}],
        "seeds": [1, 2],
        "budgets": [256, 512],
        "baseline": "baseline",
        "overrides": {"data.path": str(folder), "data.val_bytes": 1024, "trainer.devices": 1},
        "eval": {"test_bytes": 2048, "val_points": 2,
                 "heldout": {"name": "held", "source": str(folder.parent / "held.txt"),
                             "split": "test", "bytes": 1024}},
        **changes,
    }
    held = folder.parent / "held.txt"
    if not held.exists():
        held.write_text("".join(f"Line {i}: a held-out sentence of plain words.\n" for i in range(800)))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
