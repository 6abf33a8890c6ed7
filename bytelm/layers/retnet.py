"""RetNet multi-scale retention (Sun et al. 2023, arXiv 2307.08621) on the SSD scan.

Per head h with the paper's fixed decay gamma_h = 1 - 2^(-5 - h) (h = 0 .. H - 1):

    S_t = gamma_h S_{t-1} + k_t^T v_t          # [Dk, Dv] (stored as [Dv, Dk])
    o_t = q_t S_t                              # [Dv]

q and k are rotated by RoPE at their true positions (the xPos-style rotation, without xPos's
length extrapolation scale) and q is scaled by Dk^-1/2. The state is not normalised; each
head's output goes through an RMSNorm (the paper's GroupNorm), is gated by swish(W_g x) and
projected back. On `chunk_scan`: dt = 1, A = log(gamma_h), B = k, C = q, x = v, one group per
head. Padded positions (`lengths`) get dt = 0, an identity step; the state also keeps each row's
position count for RoPE, so prefill in pieces and `step` continue exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.ssd import chunk_scan
from bytelm.layers.attention import rope
from bytelm.layers.norm import RMSNorm
from bytelm.layers.scan_inputs import advanced, fixed_steps
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where


@dataclass
class RetentionState:
    ssm: torch.Tensor  # [B, H, Dv, Dk] retention state S^T (float32 at least)
    pos: torch.Tensor  # [B] int64, positions seen so far


class Retention(nn.Module):
    """Multi-scale retention: key width d_model, value width expand * d_model, `n_heads` heads."""

    def __init__(
        self, d_model: int, n_heads: int, expand: int = 2, chunk_size: int = 64,
        rope_base: float = 10000.0, norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_heads, self.chunk_size, self.rope_base = n_heads, chunk_size, rope_base
        self.key_dim, self.value_dim = d_model // n_heads, expand * d_model // n_heads
        self.d_value = expand * d_model
        self.in_proj = nn.Linear(d_model, 2 * d_model + 2 * self.d_value, bias=False)  # q, k, v, g
        self.norm = RMSNorm(self.value_dim, eps=norm_eps)
        self.out_proj = nn.Linear(self.d_value, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections N(0, 0.02), the head norm's weight 1 (the decays are fixed, not learned)."""
        nn.init.normal_(self.in_proj.weight, std=0.02)
        nn.init.normal_(self.out_proj.weight, std=0.02)
        nn.init.ones_(self.norm.weight)

    def log_decay(self, dtype: torch.dtype, device=None) -> torch.Tensor:
        """log(gamma_h) [H], gamma_h = 1 - 2^(-5 - h)."""
        h = torch.arange(self.n_heads, device=device, dtype=dtype)
        return torch.log1p(-torch.exp2(-5.0 - h))

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> RetentionState:
        dtype = dtype or self.in_proj.weight.dtype
        shape = (batch_size, self.n_heads, self.value_dim, self.key_dim)
        return RetentionState(
            ssm=torch.zeros(shape, device=device, dtype=state_dtype(dtype)),
            pos=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def _project(self, x: torch.Tensor, pos: torch.Tensor):
        """x [B, T, D], positions [B, T] -> q, k [B, T, H, Dk] (rotated, q scaled), v [B, T, H, Dv], g."""
        bsz, seqlen, d = x.shape
        q, k, v, g = self.in_proj(x).split([d, d, self.d_value, self.d_value], dim=-1)
        heads = (bsz, seqlen, self.n_heads)
        q = rope(q.reshape(*heads, self.key_dim), pos, self.rope_base) * self.key_dim**-0.5
        k = rope(k.reshape(*heads, self.key_dim), pos, self.rope_base)
        return q, k, v.reshape(*heads, self.value_dim), g

    def _output(self, o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """o [B, T, H, Dv], gate g [B, T, Dv*H] -> [B, T, D]."""
        o = self.norm(o).reshape(*o.shape[:2], self.d_value)
        return self.out_proj(F.silu(g) * o)

    def forward(
        self, x: torch.Tensor, state: RetentionState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RetentionState | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = x.shape
        start = torch.zeros(bsz, dtype=torch.long, device=x.device) if state is None else state.pos
        q, k, v, g = self._project(x, start[:, None] + torch.arange(seqlen, device=x.device))
        dt = fixed_steps(x.new_ones(self.n_heads), bsz, seqlen, lengths)  # [B, T, H]
        A = self.log_decay(state_dtype(x.dtype), x.device)
        init = None if state is None else state.ssm
        out = chunk_scan(v, dt, A, k, q, self.chunk_size, initial_state=init, return_final_state=state is not None)
        o, final = out if state is not None else (out, None)
        y = self._output(o, g)
        if state is None:
            return y, None
        return y, RetentionState(ssm=final.to(state.ssm.dtype), pos=advanced(state.pos, seqlen, lengths))

    def step(
        self, x: torch.Tensor, state: RetentionState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RetentionState]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        q, k, v, g = self._project(x[:, None], state.pos[:, None])  # [B, 1, H, *]
        sdt = state.ssm.dtype
        gamma = torch.exp(self.log_decay(sdt, x.device))  # [H]
        kv = torch.einsum("bhp,bhn->bhpn", v[:, 0].to(sdt), k[:, 0].to(sdt))  # [B, H, Dv, Dk]
        ssm = state.ssm * gamma[:, None, None] + kv
        o = torch.einsum("bhpn,bhn->bhp", ssm, q[:, 0].to(sdt)).to(x.dtype)  # [B, H, Dv]
        y = self._output(o[:, None], g)[:, 0]
        new = RetentionState(ssm=ssm, pos=state.pos + 1)
        return y, new if commit is None else tree_where(commit, new, state)
