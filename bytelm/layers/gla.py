"""Gated linear attention (Yang et al. 2023, arXiv 2312.06635), the GLA layer of the paper.

From x [B, T, D], per head (key width D / 2 and value width D over `n_heads` heads, the paper's
expand_k = 0.5, expand_v = 1):

    q, k, v, r = W_q x, W_k x, W_v x, W_r x
    g_t   = logsigmoid(W_up W_down x_t) / 16        # log of the gate alpha_t, per key channel
    S_t   = diag(alpha_t) S_{t-1} + k_t^T v_t        # [Dk, Dv]
    o_t   = q_t S_t / sqrt(Dk)
    y     = W_o (swish(r) * RMSNorm_head(o))

The gate is low rank (rank 16, the paper's) and divided by the paper's normaliser 16, which
keeps alpha near 1 at initialisation; the log-gate is also clamped at `LOG_GATE_MIN` so that no
step erases more than a fixed fraction of the state in float32. The chunked pass is
`bytelm.kernels.gla.chunk_gla`; `step` is the recurrence itself. Positions past `lengths` are
identity steps (gate 1, no write). The decoding state is S, of constant size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.gla import chunk_gla
from bytelm.layers.init import STD
from bytelm.layers.norm import RMSNorm
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where

GATE_NORMALISER = 16.0  # the paper's 1 / tau on the log-sigmoid gate
GATE_RANK = 16  # rank of the gate projection
LOG_GATE_MIN = -5.0  # per-step log-gate floor: alpha >= e^-5, so chunk products stay exact in float32


@dataclass
class GLAState:
    ssm: torch.Tensor  # [B, H, Dk, Dv] state S (float32 at least)


class GLA(nn.Module):
    """GLA mixer: key width d_model / 2, value width d_model, `n_heads` heads."""

    def __init__(
        self, d_model: int, n_heads: int, chunk_size: int = 16, norm_eps: float = 1e-5, out_std: float = STD
    ) -> None:
        super().__init__()
        self.n_heads, self.chunk_size, self.out_std = n_heads, chunk_size, out_std
        self.d_key, self.d_value = d_model // 2, d_model
        self.key_dim, self.value_dim = self.d_key // n_heads, self.d_value // n_heads
        self.in_proj = nn.Linear(d_model, 2 * self.d_key + 2 * self.d_value, bias=False)  # q, k, v, r
        self.gate_down = nn.Linear(d_model, GATE_RANK, bias=False)
        self.gate_up = nn.Linear(GATE_RANK, self.d_key)
        self.norm = RMSNorm(self.value_dim, eps=norm_eps)
        self.out_proj = nn.Linear(self.d_value, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections N(0, 0.02) (out_proj: `out_std`), gate bias 0, head norm weight 1."""
        for lin in (self.in_proj, self.gate_down, self.gate_up):
            nn.init.normal_(lin.weight, std=STD)
        nn.init.zeros_(self.gate_up.bias)
        nn.init.normal_(self.out_proj.weight, std=self.out_std)
        self.norm.reset_parameters()

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> GLAState:
        dtype = dtype or self.in_proj.weight.dtype
        shape = (batch_size, self.n_heads, self.key_dim, self.value_dim)
        return GLAState(ssm=torch.zeros(shape, device=device, dtype=state_dtype(dtype)))

    def _project(self, x: torch.Tensor):
        """x [B, T, D] -> q, k, log-gate g [B, T, H, Dk], v [B, T, H, Dv], output gate r [B, T, Dv*H]."""
        heads = (*x.shape[:2], self.n_heads)
        q, k, v, r = self.in_proj(x).split([self.d_key, self.d_key, self.d_value, self.d_value], dim=-1)
        g = F.logsigmoid(self.gate_up(self.gate_down(x)).to(state_dtype(x.dtype))) / GATE_NORMALISER
        g = g.clamp(min=LOG_GATE_MIN)
        return (
            q.reshape(*heads, self.key_dim), k.reshape(*heads, self.key_dim),
            v.reshape(*heads, self.value_dim), g.reshape(*heads, self.key_dim), r,
        )

    def _output(self, o: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """o [B, T, H, Dv], gate r [B, T, Dv*H] -> [B, T, D]."""
        o = self.norm(o).reshape(*o.shape[:2], self.d_value)
        return self.out_proj(F.silu(r) * o)

    def forward(
        self, x: torch.Tensor, state: GLAState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, GLAState | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        q, k, v, g, r = self._project(x)
        init = None if state is None else state.ssm
        o, final = chunk_gla(q, k, v, g, initial_state=init, lengths=lengths, chunk_size=self.chunk_size)
        y = self._output(o, r)
        return y, None if state is None else GLAState(ssm=final.to(state.ssm.dtype))

    def step(
        self, x: torch.Tensor, state: GLAState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, GLAState]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        q, k, v, g, r = self._project(x[:, None])  # [B, 1, H, *]
        sdt = state.ssm.dtype
        kv = k[:, 0, :, :, None].to(sdt) * v[:, 0, :, None, :].to(sdt)  # [B, H, Dk, Dv]
        ssm = torch.exp(g[:, 0].to(sdt))[..., None] * state.ssm + kv
        o = torch.einsum("bhk,bhkv->bhv", q[:, 0].to(sdt) * self.key_dim**-0.5, ssm).to(x.dtype)
        y = self._output(o[:, None], r)[:, 0]
        new = GLAState(ssm=ssm)
        return y, new if commit is None else tree_where(commit, new, state)
