"""BLT's entropy chunking (arXiv 2412.09871): a chunk starts where a small byte LM is unsure.

A frozen byte LM reads the bytes; after x_{t-1} its next-byte distribution has the entropy
H_t = -sum_v p(v | x_<t) ln p(v | x_<t) (nats, over its whole vocabulary), so H_t depends on
bytes before t only and the rule is causal. Position t starts a chunk when

- `global`:   H_t > theta                 (BLT's global threshold), or
- `relative`: H_t - H_{t-1} > theta       (BLT's approximate monotonicity constraint),

and position 0 always does. Before any byte the LM knows nothing, so H_0 = ln V (V its
vocabulary): the relative rule never fires at t = 1. p_t is 1 at boundaries and 0 elsewhere,
as for `space` and `fixed:P`, so dechunking repeats inner outputs as they are.

In decoding the LM steps beside the main model: `EntropyState` (its own state tree, the entropy
of the prediction of the next byte, and the entropy at the last position) rides in the stage's
`RoutingState`, so it has a constant size when the LM's does. The LM runs in float32 with no
gradient whatever the rest of the model does (autocast off, kept float32 by `_apply`), and
initialising the model leaves its pretrained weights alone: it is never trained here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.layers.chunking import RoutingState


@dataclass
class EntropyState:
    lm: Any  # the entropy LM's decoding state tree
    h_next: torch.Tensor  # [B] float32 entropy of the LM's prediction of the next byte
    h_last: torch.Tensor  # [B] float32 entropy at the last position seen (for `relative`)


def next_byte_entropy(logits: torch.Tensor) -> torch.Tensor:
    """logits [..., V] -> the entropy in nats of each softmax distribution [...], in float32."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def entropy_scores(h: torch.Tensor, before: torch.Tensor, mode: str) -> torch.Tensor:
    """The quantity compared with theta at each position: H_t [B, T] itself (`global`) or its
    rise over the previous position (`relative`), `before` [B] the entropy before the first."""
    if mode == "global":
        return h
    prev = torch.cat([before[:, None], h[:, :-1]], dim=1)  # [B, T]
    return h - prev


class EntropyRouter(nn.Module):
    """Boundaries from a frozen byte LM's next-byte entropies (rule `entropy`, stage 0)."""

    pretrained = True  # initialising the model leaves the LM's weights alone (`reset_tree`)

    def __init__(self, lm: nn.Module, mode: str, threshold: float | None) -> None:
        super().__init__()
        self.lm = lm
        self.mode = mode
        self.threshold = threshold  # nats; None until calibration sets it
        self.vocab_size = lm.config.vocab_size
        self.lm.requires_grad_(False).float()

    def _apply(self, fn, recurse: bool = True):
        """Moves follow the model; dtypes do not: the LM stays float32."""
        super()._apply(fn, recurse)
        self.lm.float()
        return self

    def train(self, mode: bool = True) -> EntropyRouter:
        """The model's mode for everything else; the LM always evaluates."""
        super().train(mode)
        self.lm.eval()
        return self

    @property
    def h_start(self) -> float:
        """H_0: the entropy of a uniform guess over the LM's vocabulary."""
        return math.log(self.vocab_size)

    def allocate_state(self, batch_size: int, device=None) -> EntropyState:
        start = torch.full((batch_size,), self.h_start, device=device)
        return EntropyState(
            lm=self.lm.allocate_state(batch_size, device=device, dtype=torch.float32),
            h_next=start, h_last=start.clone(),
        )

    def flops_per_byte(self, seq_len_bytes: int) -> float:
        """The LM's forward FLOPs per byte (a third of its forward + backward count: it is frozen)."""
        return self.lm.flops_per_byte(seq_len_bytes) / 3

    def _lm_pass(self, ids: torch.Tensor, state: EntropyState | None) -> tuple[torch.Tensor, Any]:
        """ids [B, T] -> the entropy of the LM's prediction after each byte [B, T] (float32),
        and the LM's state after them (None without a state)."""
        with torch.no_grad(), torch.autocast(device_type=ids.device.type, enabled=False):
            if state is None:
                return next_byte_entropy(self.lm(ids).logits), None
            if ids.shape[1] == 1:
                logits, lm_state = self.lm.step(ids[:, 0], state.lm)
                return next_byte_entropy(logits)[:, None], lm_state
            logits, lm_state = self.lm.prefill(ids, state.lm)
            return next_byte_entropy(logits), lm_state

    def entropies(
        self, ids: torch.Tensor, state: EntropyState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Any, torch.Tensor]:
        """For ids [B, T]: H_t at every position [B, T], the entropy before the first position
        [B], the LM's state after the pass (None without a state) and the entropy of its
        prediction of the byte after the last [B]."""
        after, lm_state = self._lm_pass(ids, state)  # after[:, t] scores x_{t+1}
        if state is None:
            first = before = after.new_full((ids.shape[0],), self.h_start)
        else:
            first, before = state.h_next.to(after.dtype), state.h_last.to(after.dtype)
        h = torch.cat([first[:, None], after[:, :-1]], dim=1)  # [B, T]
        return h, before, lm_state, after[:, -1]

    def route(
        self, x: torch.Tensor, ids: torch.Tensor, state: RoutingState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, EntropyState | None]:
        """x [B, T, D] (for its dtype), ids [B, T] -> p [B, T], boundaries b [B, T] bool, and
        the entropy state after the pass (None without a state)."""
        if self.threshold is None:
            raise RuntimeError("entropy chunking has no threshold yet: calibrate it first")
        own = None if state is None else state.entropy
        h, before, lm_state, h_next = self.entropies(ids, own)
        pos = torch.arange(ids.shape[1], device=ids.device)[None]  # [1, T]
        if state is not None:
            pos = state.pos[:, None] + pos  # [B, T]
        b = (pos == 0) | (entropy_scores(h, before, self.mode) > self.threshold)
        new = None if state is None else EntropyState(lm_state, h_next, h[:, -1])
        return b.to(x.dtype), b, new
