"""Mamba-2 mixer: in_proj -> causal depthwise conv -> SSD scan -> gated RMSNorm -> out_proj.

The scan is `bytelm.kernels.ssd.chunk_scan` (chunked, differentiable); `step` is the same
recurrence one position at a time for decoding. Both the full pass and `step` carry an
`SSMState` (the last d_conv - 1 conv inputs and the [H, P, N] scan state), so a prompt can be
prefilled in pieces and decoding continues exactly where the forward pass stopped.

`lengths` [B] marks how many leading positions of each row are real (rows of the inner stages
are right-padded to the longest chunk count); padded positions get dt = 0, an identity step, so
the state after the pass is the state after each row's last real position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.ssd import chunk_scan
from bytelm.layers.init import STD
from bytelm.layers.norm import RMSNorm
from bytelm.layers.state import tree_where


@dataclass
class SSMState:
    conv: torch.Tensor  # [B, conv_dim, d_conv - 1] last conv inputs, oldest first
    ssm: torch.Tensor  # [B, H, P, N] scan state (float32, or float64 for a float64 model)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan state keeps at least float32."""
    return torch.promote_types(dtype, torch.float32)


class Mamba2(nn.Module):
    """Mamba-2 mixer with scalar decay per head; `out_std` is out_proj's initial standard deviation."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        headdim: int = 64,
        expand: int = 2,
        ngroups: int = 1,
        d_conv: int = 4,
        chunk_size: int = 64,
        norm_eps: float = 1e-5,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        out_std: float = STD,
    ) -> None:
        super().__init__()
        self.dt_min, self.dt_max, self.out_std = dt_min, dt_max, out_std
        self.d_inner = expand * d_model
        self.nheads = self.d_inner // headdim
        self.headdim, self.d_state, self.ngroups = headdim, d_state, ngroups
        self.d_conv, self.chunk_size = d_conv, chunk_size
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * ngroups * d_state + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim)
        self.dt_bias = nn.Parameter(torch.empty(self.nheads))
        self.A_log = nn.Parameter(torch.empty(self.nheads))
        self.D = nn.Parameter(torch.empty(self.nheads))
        self.norm = RMSNorm(self.d_inner, eps=norm_eps)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Projections N(0, 0.02) (out_proj: `out_std`), torch's default conv; dt log-uniform in
        [dt_min, dt_max] stored as its inverse softplus, A uniform in [1, 16], D = 1 (Mamba-2)."""
        nn.init.normal_(self.in_proj.weight, std=STD)
        nn.init.normal_(self.out_proj.weight, std=self.out_std)
        self.conv1d.reset_parameters()
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        with torch.no_grad():
            dt = torch.exp(torch.rand(self.nheads) * (hi - lo) + lo).clamp(min=1e-4)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            self.A_log.copy_(torch.log(torch.empty(self.nheads).uniform_(1, 16)))
            self.D.fill_(1.0)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> SSMState:
        dtype = dtype or self.in_proj.weight.dtype
        return SSMState(
            conv=torch.zeros(batch_size, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(
                batch_size, self.nheads, self.headdim, self.d_state, device=device, dtype=state_dtype(dtype)
            ),
        )

    def _split(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _split_xbc(self, xbc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gn = self.ngroups * self.d_state
        x, b, c = torch.split(xbc, [self.d_inner, gn, gn], dim=-1)
        shape = xbc.shape[:-1]
        return (
            x.reshape(*shape, self.nheads, self.headdim),
            b.reshape(*shape, self.ngroups, self.d_state),
            c.reshape(*shape, self.ngroups, self.d_state),
        )

    def _conv(self, xbc_h: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv of [B, K-1+T, C] (history first) -> [B, T, C], as a sum of K
        shifted products over the time axis: exact in every dtype, much faster than grouped conv
        in float64, and in the projection's own layout (transposing to [B, C, T] and back made
        a tiny-hybrid training step 1.14x slower)."""
        k = self.d_conv
        seqlen = xbc_h.shape[1] - (k - 1)
        weight = self.conv1d.weight[:, 0]  # [C, K]
        out = self.conv1d.bias + weight[:, 0] * xbc_h[:, :seqlen]
        for i in range(1, k):
            out = out + weight[:, i] * xbc_h[:, i : i + seqlen]
        return out

    def forward(
        self, u: torch.Tensor, state: SSMState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, SSMState | None]:
        """u [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        bsz, seqlen, _ = u.shape
        z, xbc, dt = self._split(self.in_proj(u))
        if state is None:
            xbc_h = F.pad(xbc, (0, 0, self.d_conv - 1, 0))  # [B, K-1+T, C]
        else:
            xbc_h = torch.cat([state.conv.transpose(1, 2).to(xbc.dtype), xbc], dim=1)  # [B, K-1+T, C]
        conv = self._conv(xbc_h)  # [B, T, C]
        x, b, c = self._split_xbc(F.silu(conv))  # [B, T, H, P], [B, T, G, N] x2
        dt = F.softplus(dt + self.dt_bias)  # [B, T, H]
        if lengths is not None:
            real = torch.arange(seqlen, device=u.device) < lengths[:, None]  # [B, T]
            dt = dt * real[..., None].to(dt.dtype)
        A = -torch.exp(self.A_log.to(state_dtype(u.dtype)))
        init = None if state is None else state.ssm
        out = chunk_scan(
            x, dt, A, b, c, self.chunk_size, D=self.D, initial_state=init,
            return_final_state=state is not None,
        )
        y, final = out if state is not None else (out, None)
        y = self.out_proj(self.norm(y.reshape(bsz, seqlen, self.d_inner), gate=z))
        if state is None:
            return y, None
        n = torch.full((bsz,), seqlen, device=u.device) if lengths is None else lengths
        idx = n[:, None] + torch.arange(self.d_conv - 1, device=u.device)  # [B, K-1]
        new_conv = xbc_h.gather(1, idx[:, :, None].expand(-1, -1, self.conv_dim)).transpose(1, 2)  # [B, C, K-1]
        return y, SSMState(conv=new_conv.to(state.conv.dtype), ssm=final.to(state.ssm.dtype))

    def step(
        self, u: torch.Tensor, state: SSMState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, SSMState]:
        """One position: u [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        z, xbc, dt = self._split(self.in_proj(u))
        window = torch.cat([state.conv.to(xbc.dtype), xbc[..., None]], dim=-1)  # [B, C, K]
        conv = self.conv1d.bias + (window * self.conv1d.weight[:, 0]).sum(-1)  # [B, C]
        x, b, c = self._split_xbc(F.silu(conv))  # [B, H, P], [B, G, N] x2
        bsz, sdt = u.shape[0], state.ssm.dtype
        grouped = (bsz, self.ngroups, self.nheads // self.ngroups, self.headdim)  # heads as [G, R]
        b = b.to(sdt)[:, :, None, None, :]  # [B, G, 1, 1, N]
        c = c.to(sdt)[:, :, None, :, None]  # [B, G, 1, N, 1]
        dt = F.softplus(dt + self.dt_bias).to(sdt)  # [B, H]
        decay = torch.exp(dt * -torch.exp(self.A_log.to(sdt)))  # [B, H]
        xs = x.to(sdt)
        inp = (dt[..., None] * xs).view(grouped)[..., None] * b  # [B, G, R, P, N]
        ssm = state.ssm * decay[..., None, None] + inp.view(state.ssm.shape)  # [B, H, P, N]
        y = (ssm.view(*grouped, -1) @ c).view(xs.shape) + xs * self.D[:, None].to(sdt)  # [B, H, P]
        y = self.out_proj(self.norm(y.to(u.dtype).reshape(bsz, self.d_inner), gate=z))
        new = SSMState(conv=window[..., 1:].to(state.conv.dtype), ssm=ssm)
        return y, new if commit is None else tree_where(commit, new, state)
