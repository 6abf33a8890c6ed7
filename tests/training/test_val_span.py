"""Validation during training scores exactly the same bytes for the byte model and the baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_helpers import baseline_recipe, hybrid_recipe

from bytelm.config import config_from_dict
from bytelm.data.tokenizer import BpeTokenizer
from bytelm.training.datamodule import ShardDataModule


def _module(recipe: dict, folder: Path, val_bytes: int) -> ShardDataModule:
    data = {**recipe["data"], "path": str(folder), "val_bytes": val_bytes, "val_context": 16}
    module = ShardDataModule(**data)
    module.model_config = config_from_dict(recipe["model"]["config"])
    module.setup("fit")
    return module


def _scored(module: ShardDataModule) -> tuple[list[np.ndarray], int]:
    """The scored target ids of every validation window, and the bytes the batches count."""
    targets, counted = [], 0
    for ids, mask, n_bytes in module.val_dataloader():
        for row, keep in zip(ids[:, 1:].numpy(), mask.numpy()):
            targets.append(row[keep])
        counted += int(n_bytes.sum())
    return targets, counted


@pytest.mark.parametrize("val_bytes", [1000, 4096, 0])
def test_byte_model_and_baseline_score_the_same_bytes(token_folder: Path, val_bytes: int):
    byte_targets, byte_count = _scored(_module(hybrid_recipe(token_folder), token_folder, val_bytes))
    token_targets, token_count = _scored(_module(baseline_recipe(token_folder), token_folder, val_bytes))
    tok = BpeTokenizer(token_folder / "tokenizer.model")
    scored_bytes = np.concatenate(byte_targets).astype(np.uint8).tobytes()
    scored_by_tokens = b"".join(tok.decode(t.tolist()) for t in token_targets)
    val = (token_folder / "val.bin").read_bytes()
    assert scored_bytes == scored_by_tokens == (val[:val_bytes] if val_bytes else val)
    assert byte_count == token_count == len(scored_bytes)
