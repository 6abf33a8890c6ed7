"""AdamW with decoupled weight decay and the warmup-stable-decay (WSD) learning-rate schedule.

The argument dataclasses are what a recipe's `model.optimizer` and `model.schedule` sections hold;
LightningCLI validates them from their type hints, and they serialise as plain dicts so a
checkpoint holds no pickled classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bytelm.errors import BytelmError


def _require(ok: bool, key: str, value: object, allowed: str) -> None:
    """One line naming the recipe key, the value given and what is allowed."""
    if not ok:
        raise BytelmError(f"model.{key} {value}: {allowed}")


@dataclass
class OptimizerArgs:
    """AdamW settings."""

    lr: float = 3e-3
    """Peak learning rate (per-stage multipliers of the hybrid scale it)."""
    weight_decay: float = 0.1
    """Decoupled weight decay on matrices; norms and embeddings get none."""
    beta1: float = 0.9
    """First-moment decay."""
    beta2: float = 0.95
    """Second-moment decay."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables clipping)."""

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optimizer.lr", self.lr, "must be > 0")
        _require(self.weight_decay >= 0, "optimizer.weight_decay", self.weight_decay, "must be >= 0")
        _require(self.grad_clip >= 0, "optimizer.grad_clip", self.grad_clip, "must be >= 0")
        _require(self.eps > 0, "optimizer.eps", self.eps, "must be > 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            _require(0 <= value < 1, f"optimizer.{name}", value, "must lie in [0, 1)")


@dataclass
class ScheduleArgs:
    """Warmup-stable-decay: linear warmup, a flat stretch, then a linear decay to the end."""

    warmup_steps: int = 100
    """Optimizer steps of linear warmup from 0 to the peak learning rate."""
    decay_fraction: float = 0.2
    """Fraction of trainer.max_steps spent in the final linear decay."""
    min_lr_ratio: float = 0.0
    """Learning rate at the last step, as a fraction of the peak."""

    def __post_init__(self) -> None:
        _require(self.warmup_steps >= 0, "schedule.warmup_steps", self.warmup_steps, "must be >= 0")
        _require(0 <= self.decay_fraction <= 1, "schedule.decay_fraction", self.decay_fraction,
                 "must lie in [0, 1]")
        _require(0 <= self.min_lr_ratio <= 1, "schedule.min_lr_ratio", self.min_lr_ratio,
                 "must lie in [0, 1]")


def wsd_factor(step: int, total_steps: int, args: ScheduleArgs) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based) of `total_steps`."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    decay_steps = round(args.decay_fraction * total_steps)
    decay_start = total_steps - decay_steps
    if step < decay_start or decay_steps == 0:
        return 1.0
    done = min(1.0, (step - decay_start + 1) / decay_steps)
    return 1.0 - (1.0 - args.min_lr_ratio) * done


def build_optimizer(
    model: nn.Module, args: OptimizerArgs, schedule: ScheduleArgs, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the model's own parameter groups plus the WSD schedule over `total_steps`."""
    groups = model.optimizer_groups(args.weight_decay, args.lr)
    opt = torch.optim.AdamW(
        groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
        weight_decay=args.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: wsd_factor(step, total_steps, schedule)
    )
    return opt, sched
