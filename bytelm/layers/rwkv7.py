"""RWKV-7 "Goose" (Peng et al. 2025, arXiv 2503.14456): time mixing (`w`) and channel mix (`W`).

Time mixing, from x [B, T, D] with the token shift x'_t = x_{t-1} (the previous position of this
level: at inner levels the previous chunk; in decoding it is kept in the state) and per-channel
lerps x_* = x + (x' - x) * mu_*, over `n_heads` heads of width N = D / H:

    r, k, v  = W_r x_r, W_k x_k, W_v x_v
    w_t      = exp(-exp(-softplus(-(w0 + tanh(x_w W_w1) W_w2)) - 0.5))   # vector decay in (e^-0.61, 1)
    a_t      = sigmoid(a0 + x_a W_a1 W_a2)                               # in-context learning rate
    g_t      = sigmoid(x_g W_g1) W_g2                                    # output gate
    kappa    = normalize_head(k * kappa_k)                               # removal key
    k~       = k * (1 + (a - 1) * kappa_a)                               # replacement key
    S_t      = diag(w_t) S_{t-1} + (-kappa)^T ((kappa * a_t) S_{t-1}) + k~^T v   # [N, N], key x value
    o_t      = GroupNorm_head(r_t S_t) + (sum_head(r * k~ * rho)) v_t    # the bonus term
    y        = W_o (g * o)

The paper's value residual (mixing every layer's v with the first layer's) is left out: layers
here do not see each other's values. The chunked pass is `bytelm.kernels.rwkv7.chunk_rwkv7`;
`step` is the recurrence itself. The decoding state is the previous input x' and S, of constant
size; positions past `lengths` are identity steps and do not move the shift.

`W` (upper case) follows the time mixing with RWKV-7's own channel mix instead of SwiGLU:
y = W_v relu(W_k x_k)^2 with x_k the token-shifted lerp of its input (hidden width
d_intermediate); its shift is decoding state too (`RWKV7ChannelMix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.rwkv7 import chunk_rwkv7
from bytelm.layers.init import STD
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where

GROUP_NORM_EPS = 64e-5  # RWKV-7's per-head GroupNorm epsilon (1e-5 * head size 64)


def rwkv_ranks(d_model: int) -> tuple[int, int, int]:
    """Low-rank widths of the decay, in-context learning rate and output gate (RWKV-7 uses
    64, 64, 128 at d_model 768: about d / 12, d / 12, d / 6), with floors for small models."""
    return max(16, d_model // 12), max(16, d_model // 12), max(32, d_model // 6)


@dataclass
class RWKV7State:
    shift: torch.Tensor  # [B, D] the input of the previous position
    ssm: torch.Tensor  # [B, H, N, N] state S, key x value (float32 at least)


@dataclass
class ShiftState:
    shift: torch.Tensor  # [B, D] the input of the previous position


def token_shift(x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
    """x [B, T, D] -> the previous position's x [B, T, D], `prev` [B, D] (or 0) before t = 0."""
    first = torch.zeros_like(x[:, :1]) if prev is None else prev[:, None].to(x.dtype)
    return torch.cat([first, x[:, :-1]], dim=1)


def last_real(x: torch.Tensor, prev: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """The shift after a pass: x at each row's last real position, `prev` where it has none."""
    if lengths is None:
        return x[:, -1].to(prev.dtype)
    idx = (lengths - 1).clamp(min=0)[:, None, None].expand(-1, 1, x.shape[-1])
    return torch.where((lengths > 0)[:, None], x.gather(1, idx)[:, 0].to(prev.dtype), prev)


class RWKV7TimeMix(nn.Module):
    """RWKV-7 time mixing over d_model channels in `n_heads` heads."""

    def __init__(self, d_model: int, n_heads: int, chunk_size: int = 16, out_std: float = STD) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.chunk_size, self.out_std = d_model, n_heads, chunk_size, out_std
        self.head_dim = d_model // n_heads
        rank_w, rank_a, rank_g = rwkv_ranks(d_model)
        self.mu = nn.Parameter(torch.empty(6, d_model))  # lerp of r, w, k, v, a, g
        self.r_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.w0 = nn.Parameter(torch.empty(d_model))
        self.w1 = nn.Parameter(torch.empty(d_model, rank_w))
        self.w2 = nn.Parameter(torch.empty(rank_w, d_model))
        self.a0 = nn.Parameter(torch.empty(d_model))
        self.a1 = nn.Parameter(torch.empty(d_model, rank_a))
        self.a2 = nn.Parameter(torch.empty(rank_a, d_model))
        self.g1 = nn.Parameter(torch.empty(d_model, rank_g))
        self.g2 = nn.Parameter(torch.empty(rank_g, d_model))
        self.kappa_k = nn.Parameter(torch.empty(d_model))
        self.kappa_a = nn.Parameter(torch.empty(d_model))
        self.rho = nn.Parameter(torch.empty(n_heads, self.head_dim))  # the bonus
        self.norm_weight = nn.Parameter(torch.empty(d_model))
        self.norm_bias = nn.Parameter(torch.empty(d_model))
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As RWKV-7's reference, simplified: lerps 0.5; decay bias w0 from -6 to -1 across
        channels (slow to fast); first low-rank factors 0 (w, a) or N(0, 0.02) (g), second
        N(0, 0.02) (g: rank^-1/2); a0 = 0 (a = 0.5); kappa_k 0.85, kappa_a 1, bonus 0; the head
        norm the identity; r, k, v N(0, 0.02), out_proj `out_std`."""
        with torch.no_grad():
            self.mu.fill_(0.5)
            self.w0.copy_(torch.linspace(-6.0, -1.0, self.d_model))
            self.w1.zero_()
            self.w2.normal_(std=STD)
            self.a0.zero_()
            self.a1.zero_()
            self.a2.normal_(std=STD)
            self.g1.normal_(std=STD)
            self.g2.normal_(std=self.g2.shape[0] ** -0.5)
            self.kappa_k.fill_(0.85)
            self.kappa_a.fill_(1.0)
            self.rho.zero_()
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()
        for lin in (self.r_proj, self.k_proj, self.v_proj):
            nn.init.normal_(lin.weight, std=STD)
        nn.init.normal_(self.out_proj.weight, std=self.out_std)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> RWKV7State:
        dtype = dtype or self.out_proj.weight.dtype
        n = self.head_dim
        return RWKV7State(
            shift=torch.zeros(batch_size, self.d_model, device=device, dtype=dtype),
            ssm=torch.zeros(batch_size, self.n_heads, n, n, device=device, dtype=state_dtype(dtype)),
        )

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(*t.shape[:-1], self.n_heads, self.head_dim)

    def _project(self, x: torch.Tensor, prev: torch.Tensor):
        """x and the shifted x' [B, T, D] -> the recurrence's inputs per head (r, log-decay w,
        replacement key k, v, removal a = -kappa, write-back b = kappa * a_icl) and the gate g."""
        xr, xw, xk, xv, xa, xg = (x + (prev - x) * mu for mu in self.mu)
        r, k, v = self.r_proj(xr), self.k_proj(xk), self.v_proj(xv)
        sdt = state_dtype(x.dtype)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5
        log_w = -torch.exp(w.to(sdt))  # in [-e^-0.5, 0)
        icl = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kappa = F.normalize(self._heads(k * self.kappa_k), dim=-1)
        k = k * (1 + (icl - 1) * self.kappa_a)
        heads = self._heads
        return heads(r), heads(log_w), heads(k), heads(v), -kappa, kappa * heads(icl), g

    def _output(self, o: torch.Tensor, r, k, v, g) -> torch.Tensor:
        """Recurrence output o [..., H, N] -> GroupNorm per head, the bonus, the gate, out_proj."""
        of = o.to(state_dtype(o.dtype))
        of = (of - of.mean(-1, keepdim=True)) * torch.rsqrt(of.var(-1, unbiased=False, keepdim=True) + GROUP_NORM_EPS)
        o = of.to(v.dtype).reshape(*o.shape[:-2], self.d_model) * self.norm_weight + self.norm_bias
        bonus = ((r * k * self.rho).sum(-1, keepdim=True) * v).reshape(o.shape)
        return self.out_proj((o + bonus) * g)

    def forward(
        self, x: torch.Tensor, state: RWKV7State | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RWKV7State | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        prev = token_shift(x, None if state is None else state.shift)
        r, w, k, v, a, b, g = self._project(x, prev)
        init = None if state is None else state.ssm
        o, final = chunk_rwkv7(r, w, k, v, a, b, initial_state=init, lengths=lengths, chunk_size=self.chunk_size)
        y = self._output(o, r, k, v, g)
        if state is None:
            return y, None
        return y, RWKV7State(shift=last_real(x, state.shift, lengths), ssm=final.to(state.ssm.dtype))

    def step(
        self, x: torch.Tensor, state: RWKV7State, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, RWKV7State]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        r, w, k, v, a, b, g = self._project(x, state.shift.to(x.dtype))  # [B, H, N] each
        sdt = state.ssm.dtype
        read = torch.einsum("bhk,bhkv->bhv", a.to(sdt), state.ssm)  # a S_{t-1}
        kv = k.to(sdt)[..., :, None] * v.to(sdt)[..., None, :]
        ssm = torch.exp(w.to(sdt))[..., None] * state.ssm + b.to(sdt)[..., :, None] * read[..., None, :] + kv
        o = torch.einsum("bhk,bhkv->bhv", r.to(sdt), ssm).to(x.dtype)
        y = self._output(o, r, k, v, g)
        new = RWKV7State(shift=x.to(state.shift.dtype), ssm=ssm)
        return y, new if commit is None else tree_where(commit, new, state)


class RWKV7ChannelMix(nn.Module):
    """RWKV-7's channel mix: y = W_v relu(W_k (x + (x' - x) * mu))^2, x' the token shift."""

    def __init__(self, d_model: int, d_hidden: int, out_std: float = STD) -> None:
        super().__init__()
        self.out_std = out_std
        self.mu = nn.Parameter(torch.empty(d_model))
        self.key = nn.Linear(d_model, d_hidden, bias=False)
        self.value = nn.Linear(d_hidden, d_model, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Lerp 0.5, key N(0, 0.02), value `out_std`."""
        with torch.no_grad():
            self.mu.fill_(0.5)
        nn.init.normal_(self.key.weight, std=STD)
        nn.init.normal_(self.value.weight, std=self.out_std)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> ShiftState:
        dtype = dtype or self.key.weight.dtype
        return ShiftState(shift=torch.zeros(batch_size, self.mu.shape[0], device=device, dtype=dtype))

    def _mix(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.value(torch.relu(self.key(x + (prev - x) * self.mu)) ** 2)

    def forward(
        self, x: torch.Tensor, state: ShiftState | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ShiftState | None]:
        """x [B, T, D] -> y [B, T, D] and, when a state is given, the state after the pass."""
        y = self._mix(x, token_shift(x, None if state is None else state.shift))
        return y, None if state is None else ShiftState(shift=last_real(x, state.shift, lengths))

    def step(
        self, x: torch.Tensor, state: ShiftState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ShiftState]:
        """One position: x [B, D] -> y [B, D]; rows where `commit` [B] is false keep their state."""
        y = self._mix(x, state.shift.to(x.dtype))
        new = ShiftState(shift=x.to(state.shift.dtype))
        return y, new if commit is None else tree_where(commit, new, state)
