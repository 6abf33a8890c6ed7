"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs") on the SSD scan.

With the feature map phi(x) = elu(x) + 1 on queries and keys, per head and without decay:

    S_t = S_{t-1} + phi(k_t)^T v_t,  z_t = z_{t-1} + phi(k_t)      # [Dk, Dv] and [Dk]
    o_t = phi(q_t) S_t / (phi(q_t) . z_t + eps)

The normaliser z rides in the scan as an extra value channel of ones, so one `chunk_scan` call
(dt = 1, A = 0, B = phi(k), C = phi(q), x = [v, 1]) gives numerator and denominator together and
the state is the [Dv + 1, Dk] matrix: S^T with z as its last row. Padded positions
(`lengths`) get dt = 0, an identity step. No positional encoding, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.ssd import chunk_scan
from bytelm.layers.scan_inputs import fixed_steps
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where


@dataclass
class LinearAttentionState:
    ssm: torch.Tensor  # [B, H, Dv + 1, Dk]: S^T, then the normaliser z (float32 at least)


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1, positive everywhere."""
    return F.elu(x) + 1


class LinearAttention(nn.Module):
    """Causal linear attention: key width d_model, value width expand * d_model, `n_heads` heads."""

    def __init__(
        self, d_model: int, n_heads: int, expand: int = 1, chunk_size: int = 64, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.n_heads, self.chunk_size, self.eps = n_heads, chunk_size, eps
        self.key_dim, self.value_dim = d_model // n_heads, expand * d_model // n_heads
        self.d_value = expand * d_model
        self.in_proj = nn.Linear(d_model, 2 * d_model + self.d_value, bias=False)  # q, k, v
        self.out_proj = nn.Linear(self.d_value, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections N(0, 0.02)."""
        nn.init.normal_(self.in_proj.weight, std=0.02)
        nn.init.normal_(self.out_proj.weight, std=0.02)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> LinearAttentionState:
        dtype = dtype or self.in_proj.weight.dtype
        shape = (batch_size, self.n_heads, self.value_dim + 1, self.key_dim)
        return LinearAttentionState(ssm=torch.zeros(shape, device=device, dtype=state_dtype(dtype)))

    def _project(self, x: torch.Tensor):
        """x [B, T, D] -> phi(q), phi(k) [B, T, H, Dk] and [v, 1] [B, T, H, Dv + 1]."""
        bsz, seqlen, d = x.shape
        q, k, v = self.in_proj(x).split([d, d, self.d_value], dim=-1)
        heads = (bsz, seqlen, self.n_heads)
        v = v.reshape(*heads, self.value_dim)
        v1 = torch.cat([v, v.new_ones(*heads, 1)], dim=-1)
        return feature_map(q.reshape(*heads, self.key_dim)), feature_map(k.reshape(*heads, self.key_dim)), v1

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """Scan output [B, T, H, Dv + 1] (numerator, normaliser) -> [B, T, D]."""
        o = y[..., :-1] / (y[..., -1:] + self.eps)
        return self.out_proj(o.reshape(*y.shape[:2], self.d_value))

    def forward(
        self, x: torch.Tensor, state: LinearAttentionState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LinearAttentionState | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = x.shape
        q, k, v1 = self._project(x)
        dt = fixed_steps(x.new_ones(self.n_heads), bsz, seqlen, lengths)  # [B, T, H]
        A = torch.zeros(self.n_heads, device=x.device, dtype=state_dtype(x.dtype))
        init = None if state is None else state.ssm
        out = chunk_scan(v1, dt, A, k, q, self.chunk_size, initial_state=init, return_final_state=state is not None)
        y, final = out if state is not None else (out, None)
        if state is None:
            return self._output(y), None
        return self._output(y), LinearAttentionState(ssm=final.to(state.ssm.dtype))

    def step(
        self, x: torch.Tensor, state: LinearAttentionState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LinearAttentionState]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        q, k, v1 = self._project(x[:, None])  # [B, 1, H, *]
        sdt = state.ssm.dtype
        ssm = state.ssm + torch.einsum("bhp,bhn->bhpn", v1[:, 0].to(sdt), k[:, 0].to(sdt))
        y = torch.einsum("bhpn,bhn->bhp", ssm, q[:, 0].to(sdt)).to(x.dtype)  # [B, H, Dv + 1]
        new = LinearAttentionState(ssm=ssm)
        return self._output(y[:, None])[:, 0], new if commit is None else tree_where(commit, new, state)
