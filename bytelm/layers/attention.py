"""Causal attention with RoPE and grouped KV heads: sliding-window with sinks (`s/S`) or full (`t/T`).

The training pass calls `bytelm.kernels.swa.sliding_window_attention` (window) or SDPA (full).
The decoding state is a key/value buffer with a validity mask and the per-row position count:

- sliding window: a fixed buffer of `sinks + window` entries kept in a canonical form, real
  entries right-aligned in time order (the first `sinks` positions, then the latest `window`),
  padding on the left. Its size never grows, so decoding memory is constant. A continued
  prefill runs the same op over [buffer, new keys] with `seq_idx` 0 on padding and 1 elsewhere:
  the real entries are contiguous at the right, so the op's window (by index) and sinks (the
  first positions of segment 1) select exactly the keys a full pass would.
- full attention: the buffer grows by the new positions; the mask hides padding.

Keys are stored after RoPE at their true positions, so rows at different positions (inner
stages chunk at different bytes) share one buffer tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.swa import sliding_window_attention
from bytelm.layers.init import STD
from bytelm.layers.state import tree_where


@dataclass
class AttentionState:
    k: torch.Tensor  # [B, C, Hkv, Dh] keys after RoPE
    v: torch.Tensor  # [B, C, Hkv, Dh]
    valid: torch.Tensor  # [B, C] bool, which buffer entries are real
    pos: torch.Tensor  # [B] int64, positions seen so far


def rope(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs (x[..., i], x[..., i + D/2]) of x [B, T, H, D] by angle pos * base^(-2i/D)."""
    half = x.shape[-1] // 2
    cdt = torch.promote_types(x.dtype, torch.float32)
    inv = base ** (-torch.arange(half, device=x.device, dtype=cdt) * 2 / x.shape[-1])  # [D/2]
    ang = pos.to(cdt)[..., None] * inv  # [B, T, D/2]
    cos, sin = torch.cos(ang)[:, :, None, :], torch.sin(ang)[:, :, None, :]  # [B, T, 1, D/2]
    x1, x2 = x.to(cdt).split(half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


class Attention(nn.Module):
    """Multi-head causal attention; `window=None` is full attention, else sliding window + sinks.

    `out_std`: the initial standard deviation of the output projection (scaled down by depth)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int,
        window: int | None = None,
        sinks: int = 0,
        rope_base: float = 10000.0,
        out_std: float = STD,
    ) -> None:
        super().__init__()
        self.out_std = out_std
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.window, self.sinks, self.rope_base = window, sinks, rope_base
        self.qkv = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=False)
        self.out = nn.Linear(n_heads * self.head_dim, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """qkv N(0, 0.02), the output projection N(0, `out_std`)."""
        nn.init.normal_(self.qkv.weight, std=STD)
        nn.init.normal_(self.out.weight, std=self.out_std)

    @property
    def capacity(self) -> int | None:
        """Buffer entries of the decoding state (None: grows with the context)."""
        return None if self.window is None else self.window + self.sinks

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> AttentionState:
        dtype = dtype or self.qkv.weight.dtype
        size = self.capacity or 0
        shape = (batch_size, size, self.n_kv_heads, self.head_dim)
        return AttentionState(
            k=torch.zeros(shape, device=device, dtype=dtype),
            v=torch.zeros(shape, device=device, dtype=dtype),
            valid=torch.zeros(batch_size, size, dtype=torch.bool, device=device),
            pos=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def _qkv(self, x: torch.Tensor, pos: torch.Tensor):
        """x [B, T, D], positions [B, T] -> q [B, T, H, Dh], k and v [B, T, Hkv, Dh], RoPE applied."""
        bsz, seqlen, _ = x.shape
        q, k, v = self.qkv(x).split(
            [self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim], dim=-1
        )
        q = rope(q.reshape(bsz, seqlen, self.n_heads, self.head_dim), pos, self.rope_base)
        k = rope(k.reshape(bsz, seqlen, self.n_kv_heads, self.head_dim), pos, self.rope_base)
        return q, k, v.reshape(bsz, seqlen, self.n_kv_heads, self.head_dim)

    def forward(
        self, x: torch.Tensor, state: AttentionState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, AttentionState | None]:
        """x [B, T, D] -> [B, T, D]; with a state, attends over its buffer too and returns the new one."""
        bsz, seqlen, _ = x.shape
        steps = torch.arange(seqlen, device=x.device)
        start = torch.zeros(bsz, dtype=torch.long, device=x.device) if state is None else state.pos
        q, k, v = self._qkv(x, start[:, None] + steps)
        if state is None:
            if self.window is None:
                o = F.scaled_dot_product_attention(
                    q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                    enable_gqa=self.n_heads != self.n_kv_heads,
                ).transpose(1, 2)
            else:
                o = sliding_window_attention(q, k, v, self.window, self.sinks)
            return self.out(o.reshape(bsz, seqlen, -1)), None
        n = torch.full((bsz,), seqlen, device=x.device) if lengths is None else lengths
        new_valid = steps < n[:, None]  # [B, T]
        keys = torch.cat([state.k, k], dim=1)  # [B, C + T, Hkv, Dh]
        values = torch.cat([state.v, v], dim=1)
        size = state.k.shape[1]
        if self.window is None:
            causal = torch.ones(seqlen, seqlen, dtype=torch.bool, device=x.device).tril()
            mask = torch.cat([state.valid[:, None, :].expand(-1, seqlen, -1), causal.expand(bsz, -1, -1)], -1)
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), attn_mask=mask[:, None],
                enable_gqa=self.n_heads != self.n_kv_heads,
            ).transpose(1, 2)
        else:
            seq_idx = torch.cat([state.valid, torch.ones_like(new_valid)], dim=1).long()  # [B, C + T]
            q_all = torch.cat([q.new_zeros(bsz, size, self.n_heads, self.head_dim), q], dim=1)
            o = sliding_window_attention(q_all, keys, values, self.window, self.sinks, seq_idx)[:, size:]
        new_state = self._append(state, keys, values, new_valid, n)
        return self.out(o.reshape(bsz, seqlen, -1)), new_state

    def _append(
        self, state: AttentionState, keys: torch.Tensor, values: torch.Tensor, new_valid: torch.Tensor,
        n: torch.Tensor,
    ) -> AttentionState:
        """The state after n [B] new entries; keys/values [B, C + T, Hkv, Dh] are [buffer, new]."""
        valid = torch.cat([state.valid, new_valid], dim=1)  # [B, C + T]
        if self.window is None:
            return AttentionState(k=keys, v=values, valid=valid, pos=state.pos + n)
        size = state.k.shape[1]
        end = size + n  # [B] one past each row's last real entry
        total = state.valid.sum(1) + n  # [B] real entries before trimming
        ar = torch.arange(size, device=keys.device)
        recent = end[:, None] - size + ar  # [B, C] the latest C entries
        first = (end - total)[:, None] + ar[: self.sinks]  # [B, S] the first real entries
        split = torch.cat([first, end[:, None] - self.window + ar[: self.window]], dim=1)  # [B, C]
        idx = torch.where((total > size)[:, None], split, recent)
        gather = idx[:, :, None, None].expand(-1, -1, *keys.shape[2:])
        return AttentionState(
            k=keys.gather(1, gather),
            v=values.gather(1, gather),
            valid=valid.gather(1, idx),
            pos=state.pos + n,
        )

    def _take_one(self, state: AttentionState, k: torch.Tensor, v: torch.Tensor) -> AttentionState:
        """The sliding-window buffer after one new entry k, v [B, 1, Hkv, Dh] in every row.

        In the canonical form one entry leaves: the leftmost (padding) while the buffer is not
        full, else the oldest entry after the sinks. When all rows agree this is one slice-and-cat,
        the same result as the general `_append` gather; a compiled step always takes the gather,
        so it has no branch on tensor values.
        """
        full = state.valid[:, 0]  # [B] real entries are right-aligned: full iff the first is real
        one = torch.ones_like(state.valid[:, :1])
        if not torch.compiler.is_compiling():
            if bool(full.all()):
                s = self.sinks
                return AttentionState(
                    k=torch.cat([state.k[:, :s], state.k[:, s + 1 :], k], dim=1),
                    v=torch.cat([state.v[:, :s], state.v[:, s + 1 :], v], dim=1),
                    valid=state.valid, pos=state.pos + 1,
                )
            if not bool(full.any()):
                return AttentionState(
                    k=torch.cat([state.k[:, 1:], k], dim=1), v=torch.cat([state.v[:, 1:], v], dim=1),
                    valid=torch.cat([state.valid[:, 1:], one], dim=1), pos=state.pos + 1,
                )
        keys, values = torch.cat([state.k, k], dim=1), torch.cat([state.v, v], dim=1)
        return self._append(state, keys, values, one, torch.ones_like(state.pos))

    def step(
        self, x: torch.Tensor, state: AttentionState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, AttentionState]:
        """One position x [B, D] -> [B, D]; rows where `commit` [B] is false keep their state."""
        bsz = x.shape[0]
        q, k, v = self._qkv(x[:, None], state.pos[:, None])  # [B, 1, H|Hkv, Dh]
        # The query sees its own key and every real entry of the buffer; for a sliding window the
        # buffer trimmed after taking the key holds exactly the sinks and the window.
        if self.window is None:
            keys = torch.cat([state.k, k], dim=1)  # [B, C + 1, Hkv, Dh]
            values = torch.cat([state.v, v], dim=1)
            one = torch.ones(bsz, 1, dtype=torch.bool, device=x.device)
            n = torch.ones(bsz, dtype=torch.long, device=x.device) if commit is None else commit.long()
            new_state = self._append(state, keys, values, n[:, None] > 0, n)
            ctx_k, ctx_v, mask = keys, values, torch.cat([state.valid, one], dim=1)
        else:
            taken = self._take_one(state, k, v)
            ctx_k, ctx_v, mask = taken.k, taken.v, taken.valid
            new_state = taken if commit is None else tree_where(commit, taken, state)
        rep = self.n_heads // self.n_kv_heads
        qg = q.reshape(bsz, self.n_kv_heads, rep, self.head_dim)
        scores = torch.einsum("bgrd,bcgd->bgrc", qg, ctx_k) / math.sqrt(self.head_dim)
        if torch.compiler.is_compiling() or not bool(mask.all()):  # a full buffer hides nothing
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        o = torch.einsum("bgrc,bcgd->bgrd", torch.softmax(scores, dim=-1), ctx_v)  # [B, Hkv, rep, Dh]
        return self.out(o.reshape(bsz, -1)), new_state
