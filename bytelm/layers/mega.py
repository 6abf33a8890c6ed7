"""Mega (Ma et al. 2023, arXiv 2209.10655): a multi-dimensional damped EMA, then single-head
gated attention over a sliding window (Mega-chunk's local attention, with the window as chunk).

EMA per channel d and EMA dimension j (h dimensions per channel), alpha = sigmoid(.), delta =
sigmoid(.) in (0, 1):

    s_t[d, j] = alpha[d, j] beta[d, j] u_t[d] + (1 - alpha[d, j] delta[d, j]) s_{t-1}[d, j]
    u'_t[d]   = silu(sum_j eta[d, j] s_t[d, j] / sqrt(h) + omega[d] u_t[d])

a linear time-invariant diagonal SSM per channel (log decay log(1 - alpha delta), input
alpha beta, read-out eta / sqrt(h)), computed as a chunked causal convolution by
`bytelm.layers.lti.lti_conv`. alpha and delta may be shared by the `headdim` channels of a
group (headdim = 1 is the paper's per-channel form); beta and eta are per channel.

Then, from u' (Z = V = d_model, one head):

    z = silu(W_z u'), q = z * gamma_q + beta_q, k = z * gamma_k + beta_k, v = silu(W_v u)
    o = softmax(q k^T / sqrt(Z)) v over the last `window` positions (RoPE on q and k in place
        of Mega's relative position bias), through `sliding_window_attention`
    r = silu(W_r u'), c = silu(W_h u' + U_h (r * o)), phi = sigmoid(W_phi u')
    y = phi * c

The block's residual carries the (1 - phi) u highway of Mega's update. The decoding state is the
EMA state plus a key/value buffer of the last `window` positions (real entries right-aligned,
as in `bytelm.layers.attention`), so its size does not grow with the context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.swa import sliding_window_attention
from bytelm.layers.attention import rope
from bytelm.layers.lti import lti_conv, lti_step
from bytelm.layers.scan_inputs import advanced
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where


@dataclass
class MegaState:
    ema: torch.Tensor  # [B, D, h] EMA state per channel and EMA dimension
    k: torch.Tensor  # [B, W, 1, D] keys of the last W positions after RoPE
    v: torch.Tensor  # [B, W, 1, D]
    valid: torch.Tensor  # [B, W] bool, which buffer entries are real
    pos: torch.Tensor  # [B] int64, positions seen so far


class Mega(nn.Module):
    """Mega layer over d_model channels: EMA of `ema_dim` dimensions, then windowed gated attention."""

    def __init__(
        self, d_model: int, ema_dim: int = 8, headdim: int = 16, window: int = 64,
        chunk_size: int = 64, rope_base: float = 10000.0,
    ) -> None:
        super().__init__()
        self.d_model, self.ema_dim, self.headdim = d_model, ema_dim, headdim
        self.groups = d_model // headdim
        self.window, self.chunk_size, self.rope_base = window, chunk_size, rope_base
        self.alpha = nn.Parameter(torch.empty(self.groups, ema_dim))  # logits
        self.delta = nn.Parameter(torch.empty(self.groups, ema_dim))  # logits
        self.beta = nn.Parameter(torch.empty(d_model, ema_dim))
        self.eta = nn.Parameter(torch.empty(d_model, ema_dim))
        self.omega = nn.Parameter(torch.empty(d_model))
        self.qk_scale = nn.Parameter(torch.empty(2, d_model))
        self.qk_shift = nn.Parameter(torch.empty(2, d_model))
        self.v_proj = nn.Linear(d_model, d_model)
        self.mx_proj = nn.Linear(d_model, 4 * d_model)  # z, r, h, phi from the EMA output
        self.h_proj = nn.Linear(d_model, d_model, bias=False)  # U_h on r * o
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As Mega's reference: alpha, delta logits N(0, 0.2); beta N(+-1, 0.02) alternating over
        EMA dimensions; eta and omega N(0, 1); q/k scales N(0, 0.02), shifts 0; projections
        N(0, 0.02) with zero biases."""
        with torch.no_grad():
            self.alpha.normal_(std=0.2)
            self.delta.normal_(std=0.2)
            sign = torch.ones(self.ema_dim)
            sign[1::2] = -1.0
            self.beta.normal_(std=0.02).add_(sign)
            self.eta.normal_(std=1.0)
            self.omega.normal_(std=1.0)
            self.qk_scale.normal_(std=0.02)
            self.qk_shift.zero_()
        for lin in (self.v_proj, self.mx_proj, self.h_proj):
            nn.init.normal_(lin.weight, std=0.02)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> MegaState:
        dtype = dtype or self.beta.dtype
        kv = (batch_size, self.window, 1, self.d_model)
        return MegaState(
            ema=torch.zeros(batch_size, self.d_model, self.ema_dim, device=device, dtype=state_dtype(dtype)),
            k=torch.zeros(kv, device=device, dtype=dtype),
            v=torch.zeros(kv, device=device, dtype=dtype),
            valid=torch.zeros(batch_size, self.window, dtype=torch.bool, device=device),
            pos=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def _ema_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The EMA as an LTI SSM per channel and EMA dimension [D, h]: log decay
        log(1 - alpha delta), input alpha beta, read-out eta / sqrt(h)."""
        alpha = torch.sigmoid(self.alpha.to(dtype)).repeat_interleave(self.headdim, dim=0)  # [D, h]
        delta = torch.sigmoid(self.delta.to(dtype)).repeat_interleave(self.headdim, dim=0)
        return torch.log1p(-alpha * delta), alpha * self.beta.to(dtype), self.eta.to(dtype) / math.sqrt(self.ema_dim)

    def _qkv(self, u: torch.Tensor, ue: torch.Tensor, pos: torch.Tensor):
        """u, u' [B, T, D], positions [B, T] -> q, k, v [B, T, 1, D] and the gates r, h, phi."""
        z, r, h, phi = self.mx_proj(ue).chunk(4, dim=-1)
        z = F.silu(z)
        q = rope((z * self.qk_scale[0] + self.qk_shift[0])[:, :, None], pos, self.rope_base)
        k = rope((z * self.qk_scale[1] + self.qk_shift[1])[:, :, None], pos, self.rope_base)
        v = F.silu(self.v_proj(u))[:, :, None]
        return q, k, v, (r, h, phi)

    def _output(self, o: torch.Tensor, gates) -> torch.Tensor:
        """Attention output o [B, T, D] and the gates -> phi * silu(W_h u' + U_h (r * o))."""
        r, h, phi = gates
        return torch.sigmoid(phi) * F.silu(h + self.h_proj(F.silu(r) * o))

    def forward(
        self, u: torch.Tensor, state: MegaState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MegaState | None]:
        """u [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = u.shape
        a, b, c = self._ema_params(state_dtype(u.dtype))
        if state is None:
            ema = lti_conv(u, a, b, c, self.chunk_size)
        else:
            ema, final = lti_conv(
                u, a, b, c, self.chunk_size, initial_state=state.ema, lengths=lengths, return_final_state=True
            )
        ue = F.silu(ema + self.omega * u)  # [B, T, D]
        steps = torch.arange(seqlen, device=u.device)
        start = torch.zeros(bsz, dtype=torch.long, device=u.device) if state is None else state.pos
        q, k, v, gates = self._qkv(u, ue, start[:, None] + steps)
        if state is None:
            o = sliding_window_attention(q, k, v, self.window)[:, :, 0]
            return self._output(o, gates), None
        keys, values = torch.cat([state.k, k], dim=1), torch.cat([state.v, v], dim=1)  # [B, W + T, 1, D]
        n = torch.full((bsz,), seqlen, device=u.device) if lengths is None else lengths
        new_valid = steps < n[:, None]  # [B, T]
        seq_idx = torch.cat([state.valid, torch.ones_like(new_valid)], dim=1).long()  # [B, W + T]
        q_all = torch.cat([q.new_zeros(bsz, self.window, 1, self.d_model), q], dim=1)
        o = sliding_window_attention(q_all, keys, values, self.window, 0, seq_idx)[:, self.window :, 0]
        # The latest W entries of [buffer, real new entries]: real entries stay right-aligned.
        idx = n[:, None] + torch.arange(self.window, device=u.device)  # [B, W]
        gather = idx[:, :, None, None].expand(-1, -1, 1, self.d_model)
        new = MegaState(
            ema=final.to(state.ema.dtype), k=keys.gather(1, gather), v=values.gather(1, gather),
            valid=torch.cat([state.valid, new_valid], dim=1).gather(1, idx),
            pos=advanced(state.pos, seqlen, lengths),
        )
        return self._output(o, gates), new

    def step(
        self, u: torch.Tensor, state: MegaState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MegaState]:
        """One position: u [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        ema_out, ema = lti_step(u, state.ema, *self._ema_params(state.ema.dtype))
        ue = F.silu(ema_out + self.omega * u)  # [B, D]
        q, k, v, gates = self._qkv(u[:, None], ue[:, None], state.pos[:, None])  # [B, 1, 1, D]
        keys = torch.cat([state.k[:, 1:], k], dim=1)[:, :, 0]  # [B, W, D]
        values = torch.cat([state.v[:, 1:], v], dim=1)[:, :, 0]
        valid = torch.cat([state.valid[:, 1:], torch.ones_like(state.valid[:, :1])], dim=1)  # [B, W]
        scores = torch.einsum("bd,bwd->bw", q[:, 0, 0], keys) / math.sqrt(self.d_model)
        scores = scores.masked_fill(~valid, float("-inf"))
        o = torch.einsum("bw,bwd->bd", torch.softmax(scores, dim=-1), values)
        y = self._output(o[:, None], gates)[:, 0]
        new = MegaState(ema=ema, k=keys[:, :, None], v=values[:, :, None], valid=valid, pos=state.pos + 1)
        return y, new if commit is None else tree_where(commit, new, state)
