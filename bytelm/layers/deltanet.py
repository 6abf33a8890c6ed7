"""Gated DeltaNet (Yang, Kautz and Hatamizadeh 2024, arXiv 2412.06464), the mixer of Qwen3-Next.

From x [B, T, D], per head (key width D and value width gdn_expand_v * D over `n_heads` heads):

    q, k, v = silu(conv(W_q x)), silu(conv(W_k x)), silu(conv(W_v x))   # short causal depthwise conv
    q, k    = q / |q|, k / |k|                                          # L2 per head
    g_t     = -exp(A_log) softplus(W_a x_t + dt_bias)                   # log alpha_t, one per head
    beta_t  = sigmoid(W_b x_t)                                          # writing strength
    S_t     = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t  # [Dk, Dv]
    o_t     = q_t S_t / sqrt(Dk)
    y       = W_o (RMSNorm_head(o) * silu(W_r x))

S is kept [Dk, Dv] (flash-linear-attention's orientation): the paper writes its transpose,
S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T. A_log and dt_bias start as
in Mamba-2 (A in [1, 16], dt log-uniform in [1e-3, 1e-1]); the log-gate is clamped at
`LOG_GATE_MIN`. The chunked pass is `bytelm.kernels.delta_rule.chunk_gated_delta_rule`; `step`
is the recurrence itself. The decoding state is the last d_conv - 1 conv inputs and S, of
constant size; positions past `lengths` are identity steps (alpha = 1, beta = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.delta_rule import chunk_gated_delta_rule
from bytelm.layers.gla import LOG_GATE_MIN
from bytelm.layers.init import STD
from bytelm.layers.norm import RMSNorm
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where


@dataclass
class DeltaNetState:
    conv: torch.Tensor  # [B, conv_dim, d_conv - 1] last conv inputs, oldest first
    ssm: torch.Tensor  # [B, H, Dk, Dv] state S (float32 at least)


class GatedDeltaNet(nn.Module):
    """Gated DeltaNet mixer: key width d_model, value width expand_v * d_model, `n_heads` heads."""

    def __init__(
        self, d_model: int, n_heads: int, expand_v: int = 2, d_conv: int = 4, chunk_size: int = 64,
        norm_eps: float = 1e-5, out_std: float = STD,
    ) -> None:
        super().__init__()
        self.n_heads, self.d_conv, self.chunk_size, self.out_std = n_heads, d_conv, chunk_size, out_std
        self.d_key, self.d_value = d_model, expand_v * d_model
        self.key_dim, self.value_dim = self.d_key // n_heads, self.d_value // n_heads
        self.conv_dim = 2 * self.d_key + self.d_value
        # q, k, v (through the conv), the output gate r, then a and b (one per head each).
        self.in_proj = nn.Linear(d_model, self.conv_dim + self.d_value + 2 * n_heads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.norm = RMSNorm(self.value_dim, eps=norm_eps)
        self.out_proj = nn.Linear(self.d_value, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections N(0, 0.02) (out_proj: `out_std`), torch's default conv, A uniform in
        [1, 16] as A_log, dt log-uniform in [1e-3, 1e-1] as its inverse softplus, norm weight 1."""
        nn.init.normal_(self.in_proj.weight, std=STD)
        nn.init.normal_(self.out_proj.weight, std=self.out_std)
        self.conv1d.reset_parameters()
        self.norm.reset_parameters()
        with torch.no_grad():
            self.A_log.copy_(torch.log(torch.empty(self.n_heads).uniform_(1, 16)))
            lo, hi = math.log(1e-3), math.log(1e-1)
            dt = torch.exp(torch.rand(self.n_heads) * (hi - lo) + lo).clamp(min=1e-4)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> DeltaNetState:
        dtype = dtype or self.in_proj.weight.dtype
        return DeltaNetState(
            conv=torch.zeros(batch_size, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(
                batch_size, self.n_heads, self.key_dim, self.value_dim, device=device, dtype=state_dtype(dtype)
            ),
        )

    def _conv(self, window: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv of [B, C, K-1+T] (history first) -> [B, C, T], as K shifted products."""
        seqlen = window.shape[-1] - (self.d_conv - 1)
        weight = self.conv1d.weight[:, 0]  # [C, K]
        out = weight[:, 0:1] * window[..., :seqlen]
        for i in range(1, self.d_conv):
            out = out + weight[:, i : i + 1] * window[..., i : i + seqlen]
        return out

    def _heads(self, qkv: torch.Tensor, gab: torch.Tensor):
        """Conv outputs [..., conv_dim] and the a, b logits [..., 2H] -> q, k (L2-normalised),
        v per head [..., H, *], log-gate g and beta [..., H] in the state's dtype."""
        q, k, v = F.silu(qkv).split([self.d_key, self.d_key, self.d_value], dim=-1)
        lead = qkv.shape[:-1]
        q = F.normalize(q.reshape(*lead, self.n_heads, self.key_dim), dim=-1)
        k = F.normalize(k.reshape(*lead, self.n_heads, self.key_dim), dim=-1)
        a, b = gab.to(state_dtype(gab.dtype)).chunk(2, dim=-1)
        g = (-torch.exp(self.A_log.to(a.dtype)) * F.softplus(a + self.dt_bias)).clamp(min=LOG_GATE_MIN)
        return q, k, v.reshape(*lead, self.n_heads, self.value_dim), g, torch.sigmoid(b)

    def _split(self, x: torch.Tensor):
        return self.in_proj(x).split([self.conv_dim, self.d_value, 2 * self.n_heads], dim=-1)

    def _output(self, o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """o [..., H, Dv], gate r [..., Dv*H] -> [..., D]."""
        o = self.norm(o).reshape(*o.shape[:-2], self.d_value)
        return self.out_proj(o * F.silu(r))

    def forward(
        self, x: torch.Tensor, state: DeltaNetState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, DeltaNetState | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = x.shape
        qkv, r, gab = self._split(x)
        window = qkv.transpose(1, 2)  # [B, C, T]
        if state is None:
            window = F.pad(window, (self.d_conv - 1, 0))
        else:
            window = torch.cat([state.conv.to(window.dtype), window], dim=-1)  # [B, C, K-1+T]
        q, k, v, g, beta = self._heads(self._conv(window).transpose(1, 2), gab)
        init = None if state is None else state.ssm
        o, final = chunk_gated_delta_rule(
            q, k, v, g, beta, initial_state=init, lengths=lengths, chunk_size=self.chunk_size
        )
        y = self._output(o, r)
        if state is None:
            return y, None
        n = torch.full((bsz,), seqlen, device=x.device) if lengths is None else lengths
        idx = n[:, None] + torch.arange(self.d_conv - 1, device=x.device)  # [B, K-1]
        conv = window.gather(2, idx[:, None, :].expand(-1, self.conv_dim, -1))
        return y, DeltaNetState(conv=conv.to(state.conv.dtype), ssm=final.to(state.ssm.dtype))

    def step(
        self, x: torch.Tensor, state: DeltaNetState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, DeltaNetState]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        qkv, r, gab = self._split(x)
        window = torch.cat([state.conv.to(qkv.dtype), qkv[..., None]], dim=-1)  # [B, C, K]
        q, k, v, g, beta = self._heads((window * self.conv1d.weight[:, 0]).sum(-1), gab)
        sdt = state.ssm.dtype
        k = k.to(sdt)
        ssm = torch.exp(g.to(sdt))[..., None, None] * state.ssm  # [B, H, Dk, Dv]
        delta = beta.to(sdt)[..., None] * (v.to(sdt) - torch.einsum("bhk,bhkv->bhv", k, ssm))
        ssm = ssm + k[..., :, None] * delta[..., None, :]
        o = torch.einsum("bhk,bhkv->bhv", q.to(sdt) * self.key_dim**-0.5, ssm).to(x.dtype)
        y = self._output(o, r)
        new = DeltaNetState(conv=window[..., 1:].to(state.conv.dtype), ssm=ssm)
        return y, new if commit is None else tree_where(commit, new, state)
