"""A thin LightningModule around any bytelm model (hybrid byte model or tokenized baseline).

The module owns the loss, the optimizer step and the bookkeeping that exact resumption needs;
the model stays a plain nn.Module. Optimization is manual so that a step whose loss or gradient
norm is not finite can be skipped cleanly (no optimizer or schedule update, the same decision on
every rank) and counted; too many in a row stop the run with one clear message.

A batch is `(ids [B, T+1], n_bytes [B])`: inputs `ids[:, :-1]`, targets `ids[:, 1:]`, and the
number of UTF-8 bytes the targets cover (T for bytes; the tokens' byte lengths for BPE), so bits
per byte is `sum NLL / bytes / ln 2` for both kinds of model.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from bytelm.config import config_from_dict
from bytelm.errors import BytelmError
from bytelm.layers.chunking import ALIGNMENT_KEYS, load_ratio_integrals, ratio_integrals
from bytelm.models import build_model
from bytelm.models.compiled import compile_mode, compile_model
from bytelm.training.optim import OptimizerArgs, ScheduleArgs, build_optimizer

LN2 = math.log(2.0)


class LitLM(L.LightningModule):
    """Train a bytelm model built from `config` (the recipe's `model.config` mapping)."""

    def __init__(
        self,
        config: dict[str, Any],
        optimizer: OptimizerArgs | None = None,
        schedule: ScheduleArgs | None = None,
        compile: bool | Literal["whole", "block"] = False,
        max_nonfinite_in_row: int = 20,
    ) -> None:
        """
        Args:
            config: the model configuration (`kind: hybrid` or `kind: baseline`).
            optimizer: AdamW settings.
            schedule: warmup-stable-decay settings.
            compile: torch.compile the model: true or "whole" (one call), "block" (each
                residual block alone: a third of the compile time, about 13% slower per step).
            max_nonfinite_in_row: stop after this many consecutive non-finite steps.
        """
        super().__init__()
        optimizer = optimizer or OptimizerArgs()
        schedule = schedule or ScheduleArgs()
        self.save_hyperparameters(
            {
                "config": dict(config),
                "optimizer": asdict(optimizer),
                "schedule": asdict(schedule),
                "compile": compile,
                "max_nonfinite_in_row": max_nonfinite_in_row,
            }
        )
        self.automatic_optimization = False
        self.opt_args, self.sched_args = optimizer, schedule
        self.max_nonfinite_in_row = max_nonfinite_in_row
        self.model_config = config_from_dict(dict(config))
        self.model = build_model(self.model_config)
        mode = compile_mode(compile)
        if mode is not None:
            compile_model(self.model, mode)  # in place: parameter names (and checkpoints) stay the same
        self.batches_seen = 0
        self.bytes_seen = 0
        self.nonfinite_total = 0
        self.nonfinite_in_row = 0
        self.chunks_per_byte_sums: list[float] = []  # per stage: sum over steps of 1 / compression
        self.compression_count = 0
        self._last_step_time: float | None = None
        self._val_nll = 0.0
        self._val_bytes = 0
        self.last_val_bpb: float | None = None
        self.last_val_step = -1

    @property
    def kind(self) -> str:
        return getattr(self.model_config, "kind", "hybrid")

    # ---- loss ------------------------------------------------------------------------------

    def compute_loss(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training loss (mean NLL + auxiliary losses), summed target NLL, and the model's aux."""
        out = self.model(ids[:, :-1])
        nll = F.cross_entropy(
            out.logits.float().flatten(0, 1), ids[:, 1:].flatten(), reduction="sum"
        )
        loss = nll / ids[:, 1:].numel()
        if "ratio_loss" in out.aux:
            loss = loss + out.aux["ratio_loss"]
        return loss, nll, out.aux

    def _grad_norm(self) -> torch.Tensor:
        """Clip the global gradient norm (when configured) and return it before clipping."""
        wrapped = self.trainer.strategy.model if self._trainer is not None else self.model
        clip = self.opt_args.grad_clip or float("inf")
        if hasattr(wrapped, "clip_grad_norm_"):  # FSDP shards need the wrapper's own norm
            return wrapped.clip_grad_norm_(clip)
        return torch.nn.utils.clip_grad_norm_(self.parameters(), clip)

    def _all_ranks_finite(self, *values: torch.Tensor) -> bool:
        """True when every value is finite on every rank (one decision for all)."""
        bad = torch.tensor(
            float(sum(not torch.isfinite(v).all() for v in values)), device=self.device
        )
        bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        return float(bad) == 0.0

    # ---- steps -----------------------------------------------------------------------------

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        ids, n_bytes = batch  # [B, T+1], [B]
        opt = self.optimizers()
        sched = self.lr_schedulers()
        loss, nll, aux = self.compute_loss(ids)
        self.manual_backward(loss)
        grad_norm = self._grad_norm()
        self.batches_seen += 1
        if not self._all_ranks_finite(loss.detach(), grad_norm):
            opt.zero_grad(set_to_none=True)
            self.nonfinite_total += 1
            self.nonfinite_in_row += 1
            self.log("train/nonfinite_skipped", float(self.nonfinite_total), rank_zero_only=True)
            if self.nonfinite_in_row >= self.max_nonfinite_in_row:
                raise BytelmError(
                    f"stopping: {self.nonfinite_in_row} steps in a row had a non-finite loss or "
                    f"gradient (last at batch {self.batches_seen}); lower the learning rate or "
                    "check the data"
                )
            return
        self.nonfinite_in_row = 0
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        self._log_train(ids, n_bytes, loss, nll, aux, grad_norm, lr)

    def _log_train(self, ids, n_bytes, loss, nll, aux, grad_norm, lr) -> None:
        reduce = self.trainer.strategy.reduce
        batch_bytes = int(reduce(n_bytes.sum().double(), reduce_op="sum"))  # all ranks
        batch_tokens = ids[:, 1:].numel() * self.trainer.world_size
        self.bytes_seen += batch_bytes
        now = time.perf_counter()
        elapsed = None if self._last_step_time is None else now - self._last_step_time
        self._last_step_time = now
        metrics = {
            "train/loss": loss.detach(),
            "train/bpb": nll.detach() / n_bytes.sum() / LN2,
            "lr": lr,
            "grad_norm": grad_norm.detach(),
        }
        if elapsed:
            metrics["train/bytes_per_s"] = batch_bytes / elapsed
            metrics["train/tokens_per_s"] = batch_tokens / elapsed
        compression = [float(c) for c in aux.get("compression", [])]
        if compression:
            if not self.chunks_per_byte_sums:
                self.chunks_per_byte_sums = [0.0] * len(compression)
            self.chunks_per_byte_sums = [s + 1 / c for s, c in zip(self.chunks_per_byte_sums, compression)]
            self.compression_count += 1
            for k, c in enumerate(compression):
                metrics[f"train/compression_s{k}"] = c
                for key in ALIGNMENT_KEYS:
                    metrics[f"train/{key}_s{k}"] = aux[key][k]
                metrics[f"train/ratio_integral_s{k}"] = aux["ratio_integral"][k]
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, rank_zero_only=True)

    def mean_compression(self) -> list[float] | None:
        """Bytes per chunk per stage over the optimizer steps so far (this rank's batches): the
        harmonic mean of the steps' figures, i.e. all positions over all chunks (exactly so at
        stage 0, where every step sees the same number of bytes; an arithmetic mean would let
        the first steps, where a fresh router starts almost no chunks, dominate)."""
        if not self.compression_count:
            return None
        return [self.compression_count / s for s in self.chunks_per_byte_sums]

    def on_validation_epoch_start(self) -> None:
        self._val_nll, self._val_bytes = 0.0, 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        ids, score_mask, n_bytes = batch  # [B, T+1], [B, T] bool, [B]
        logits = self.model(ids[:, :-1]).logits.float()
        nll = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        self._val_nll += float((nll * score_mask.flatten()).sum())
        self._val_bytes += int(n_bytes.sum())

    def on_validation_epoch_end(self) -> None:
        if self._val_bytes:
            bpb = self._val_nll / self._val_bytes / LN2
            self.log("val/bpb", bpb, rank_zero_only=True, sync_dist=False)
            self.last_val_bpb = bpb
            self.last_val_step = self.global_step

    # ---- optimizer, checkpoint state -------------------------------------------------------

    def configure_optimizers(self):
        total = self.trainer.max_steps
        if total is None or total <= 0:
            raise BytelmError("set trainer.max_steps: the schedule is defined over optimizer steps")
        opt, sched = build_optimizer(self.model, self.opt_args, self.sched_args, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["bytelm"] = {
            "batches_seen": self.batches_seen,
            "bytes_seen": self.bytes_seen,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_in_row": self.nonfinite_in_row,
            "chunks_per_byte_sums": list(self.chunks_per_byte_sums),
            "ratio_integrals": ratio_integrals(self.model),
            "compression_count": self.compression_count,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("bytelm")
        if state is None:
            raise BytelmError("this checkpoint was not written by `bytelm train`")
        if "ratio_integrals" not in state:
            raise BytelmError("this checkpoint was written by an older bytelm (no ratio-loss state): start the run afresh")
        self.batches_seen = state["batches_seen"]
        self.bytes_seen = state["bytes_seen"]
        self.nonfinite_total = state["nonfinite_total"]
        self.nonfinite_in_row = state["nonfinite_in_row"]
        self.chunks_per_byte_sums = list(state["chunks_per_byte_sums"])
        load_ratio_integrals(self.model, state["ratio_integrals"])
        self.compression_count = state["compression_count"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
