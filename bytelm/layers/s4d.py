"""S4D-style linear time-invariant SSM (Gu et al. 2022, arXiv 2206.11893), real-diagonal
(S4D-Real) variant, on the SSD scan.

Per channel d and state index n (N states per channel), with parameters A < 0, B, C, D and a
step dt that do not depend on the input:

    h_t[d, n] = exp(dt A[d, n]) h_{t-1}[d, n] + dt B[d, n] u_t[d]
    y_t[d]    = sum_n C[d, n] h_t[d, n] + D[d] u_t[d]

then GELU and a linear + GLU output, as in the S4D reference block. This is the real-diagonal
variant: A is real (no oscillating modes), initialised S4D-Real, A[d, n] = -(n + 1); the
complex inits S4D-Lin and S4D-Inv share the real part -1/2 for every n and differ only in the
imaginary parts a real SSM does not have. Inputs enter with the scan's dt B u (Mamba's
discretisation) instead of the zero-order hold.

On `chunk_scan` the decay must be one scalar per head, so a head is (channel group g, state
index n): `headdim` channels share one dt (headdim = 1 is one dt per channel, the paper's
form; larger groups trade that freedom for fewer, wider heads). B is folded into the scan
input, x[(g, n), p] = B[d, n] u[d] with d = g * headdim + p, the scan's own B and C are 1 (the
LTI case, broadcast over time), and C contracts the state index afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.ssd import chunk_scan
from bytelm.layers.scan_inputs import fixed_steps
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where


@dataclass
class S4DState:
    ssm: torch.Tensor  # [B, G * N, P, 1] the state h per (group, state index, channel in group)


class S4D(nn.Module):
    """S4D-Real layer over d_model channels: N states per channel, dt shared by `headdim` channels."""

    def __init__(
        self, d_model: int, d_state: int = 16, headdim: int = 16, chunk_size: int = 64,
        dt_min: float = 1e-3, dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        self.d_model, self.d_state, self.headdim, self.chunk_size = d_model, d_state, headdim, chunk_size
        self.groups = d_model // headdim
        self.dt_min, self.dt_max = dt_min, dt_max
        self.log_dt = nn.Parameter(torch.empty(self.groups))
        self.A_log = nn.Parameter(torch.empty(self.groups, d_state))  # A = -exp(A_log)
        self.B = nn.Parameter(torch.empty(d_model, d_state))
        self.C = nn.Parameter(torch.empty(d_model, d_state))
        self.D = nn.Parameter(torch.empty(d_model))
        self.out_proj = nn.Linear(d_model, 2 * d_model)  # then GLU
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """S4D-Real: A = -(n + 1), B = 1, C ~ N(0, 1/2), D = 1, dt log-uniform in [dt_min, dt_max]."""
        with torch.no_grad():
            lo, hi = math.log(self.dt_min), math.log(self.dt_max)
            self.log_dt.copy_(torch.rand(self.groups) * (hi - lo) + lo)
            n = torch.arange(1, self.d_state + 1, dtype=torch.float32)
            self.A_log.copy_(torch.log(n).expand(self.groups, -1))
            self.B.fill_(1.0)
            self.C.normal_(std=0.5**0.5)
            self.D.fill_(1.0)
        nn.init.normal_(self.out_proj.weight, std=0.02)
        nn.init.zeros_(self.out_proj.bias)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> S4DState:
        dtype = dtype or self.B.dtype
        shape = (batch_size, self.groups * self.d_state, self.headdim, 1)
        return S4DState(ssm=torch.zeros(shape, device=device, dtype=state_dtype(dtype)))

    def _by_head(self, p: torch.Tensor) -> torch.Tensor:
        """[D, N] channel-by-state parameter -> [G, N, P], the scan's (head, channel) layout."""
        return p.view(self.groups, self.headdim, self.d_state).transpose(1, 2)

    def _scan_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """dt and A per scan head [G * N]."""
        dt = torch.exp(self.log_dt.to(dtype)).repeat_interleave(self.d_state)
        return dt, -torch.exp(self.A_log.to(dtype)).reshape(-1)

    def _output(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Scan output per head [..., G, N, P] and input u [..., D] -> the layer output [..., D]."""
        y = (y * self._by_head(self.C).to(y.dtype)).sum(-2).reshape(u.shape) + u * self.D
        return F.glu(self.out_proj(F.gelu(y)), dim=-1)

    def forward(
        self, u: torch.Tensor, state: S4DState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, S4DState | None]:
        """u [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = u.shape
        g, n, p = self.groups, self.d_state, self.headdim
        x = u.view(bsz, seqlen, g, 1, p) * self._by_head(self.B)  # [B, T, G, N, P]
        dt, A = self._scan_params(u.dtype)
        one = u.new_ones(bsz, seqlen, 1, 1)  # the scan's B and C: [B, T, 1, 1]
        init = None if state is None else state.ssm
        out = chunk_scan(
            x.reshape(bsz, seqlen, g * n, p), fixed_steps(dt, bsz, seqlen, lengths),
            A.to(state_dtype(u.dtype)), one, one, self.chunk_size, initial_state=init,
            return_final_state=state is not None,
        )
        ys, final = out if state is not None else (out, None)
        y = self._output(ys.view(bsz, seqlen, g, n, p), u)
        return y, None if state is None else S4DState(ssm=final.to(state.ssm.dtype))

    def step(
        self, u: torch.Tensor, state: S4DState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, S4DState]:
        """One position: u [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        bsz, sdt = u.shape[0], state.ssm.dtype
        x = (u.view(bsz, self.groups, 1, self.headdim) * self._by_head(self.B)).to(sdt)  # [B, G, N, P]
        dt, A = self._scan_params(sdt)
        inp = (dt[:, None] * x.reshape(bsz, -1, self.headdim))[..., None]  # [B, G * N, P, 1]
        ssm = state.ssm * torch.exp(dt * A)[:, None, None] + inp
        ys = ssm.view(bsz, self.groups, self.d_state, self.headdim).to(u.dtype)
        new = S4DState(ssm=ssm)
        return self._output(ys, u), new if commit is None else tree_where(commit, new, state)
