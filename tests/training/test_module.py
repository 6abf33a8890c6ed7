"""The LightningModule: non-finite guard, bits per byte of the baseline, the WSD schedule."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_helpers import baseline_recipe

from bytelm.errors import BytelmError
from bytelm.training.datamodule import ShardDataModule
from bytelm.training.module import LitLM
from bytelm.training.optim import OptimizerArgs, ScheduleArgs, wsd_factor


class NaNAt(LitLM):
    """A module whose loss is NaN at the given batch indices (1-based count of batches seen)."""

    def __init__(self, *args, nan_at: set[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nan_at = nan_at

    def compute_loss(self, ids):
        loss, nll, aux = super().compute_loss(ids)
        if self.batches_seen + 1 in self.nan_at:
            loss = loss * float("nan")
        return loss, nll, aux


def _parts(folder: Path, **data) -> tuple[dict, ShardDataModule]:
    recipe = baseline_recipe(folder)
    kw = {**recipe["data"], **data}
    return recipe, ShardDataModule(**kw)


def _trainer(max_steps: int) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        accelerator="cpu", devices=1,
    )


def test_nonfinite_loss_is_skipped_and_counted(token_folder: Path):
    recipe, dm = _parts(token_folder)
    torch.manual_seed(0)
    module = NaNAt(recipe["model"]["config"], OptimizerArgs(), ScheduleArgs(warmup_steps=1),
                   nan_at={3})
    trainer = _trainer(6)
    trainer.fit(module, datamodule=dm)
    assert module.nonfinite_total == 1
    assert trainer.global_step == 6 and module.batches_seen == 7  # one batch did not step
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_too_many_nonfinite_steps_in_a_row_stop_the_run(token_folder: Path):
    recipe, dm = _parts(token_folder)
    module = NaNAt(recipe["model"]["config"], nan_at=set(range(2, 100)), max_nonfinite_in_row=3)
    with pytest.raises(BytelmError, match="3 steps in a row had a non-finite loss"):
        _trainer(10).fit(module, datamodule=dm)
    assert module.nonfinite_total == 3


def test_baseline_bpb_is_token_nll_over_bytes(token_folder: Path):
    """Validation bpb over the whole val split against a direct computation from the shards."""
    from bytelm.data.shards import load_shard
    from bytelm.data.tokenizer import BpeTokenizer

    recipe, dm = _parts(token_folder, val_bytes=0)
    torch.manual_seed(0)
    module = LitLM(recipe["model"]["config"])
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    trainer.validate(module, datamodule=dm, verbose=False)

    tokens = torch.from_numpy(np.asarray(load_shard(token_folder, "val", "tokens"), dtype=np.int64))
    raw = bytes(load_shard(token_folder, "val", "bytes"))
    tok = BpeTokenizer(token_folder / "tokenizer.model")
    assert tok.decode(tokens.tolist()) == raw  # the tokens cover exactly the split's bytes
    stream = torch.cat([torch.tensor([tok.bos_id]), tokens])  # the first token follows BOS
    T, n = dm.model_seq_len, len(stream)
    nll, start = 0.0, 0
    with torch.no_grad():
        while start + 1 < n:  # windows of T targets; the last one moved left, scoring only new ones
            begin = min(start, n - T - 1)
            window = stream[begin : begin + T + 1]
            logits = module.model(window[None, :-1]).logits[0]
            losses = F.cross_entropy(logits, window[1:], reduction="none")
            nll += float(losses[start - begin :].sum())
            start = begin + T
    assert module.last_val_bpb == pytest.approx(nll / len(raw) / math.log(2), rel=1e-5)


def test_wsd_schedule_warms_up_holds_and_decays():
    args = ScheduleArgs(warmup_steps=4, decay_fraction=0.5, min_lr_ratio=0.1)
    factors = [wsd_factor(s, 20, args) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:10] == [1.0] * 6
    assert factors[10] == pytest.approx(1 - 0.9 * 0.1)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))


def test_bad_optimizer_arguments_are_user_errors():
    with pytest.raises(BytelmError, match="lr"):
        OptimizerArgs(lr=0)
    with pytest.raises(BytelmError, match="decay_fraction"):
        ScheduleArgs(decay_fraction=1.5)
