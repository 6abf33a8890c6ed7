"""SwiGLU feed-forward: out(silu(gate(x)) * up(x)), gate and up fused in one projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.layers.init import STD


class SwiGLU(nn.Module):
    """`out_std`: the standard deviation of the output projection (scaled down by depth)."""

    def __init__(self, d_model: int, d_intermediate: int, out_std: float = STD) -> None:
        super().__init__()
        self.out_std = out_std
        self.w_in = nn.Linear(d_model, 2 * d_intermediate, bias=False)
        self.w_out = nn.Linear(d_intermediate, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.w_in.weight, std=STD)
        nn.init.normal_(self.w_out.weight, std=self.out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_in(x).chunk(2, dim=-1)  # [..., F] each
        return self.w_out(F.silu(gate) * up)
