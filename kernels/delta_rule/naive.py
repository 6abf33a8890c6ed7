"""The gated delta rule (Gated DeltaNet, arXiv 2412.06464) in pure PyTorch: the specification.

Per head, with a scalar log-gate g_t <= 0 (alpha_t = exp(g_t)), writing strength beta_t in
[0, 1] and the state S [K, V] (flash-linear-attention's orientation, the transpose of the
paper's [V, K] S_t = alpha_t S_{t-1} (I - beta_t k_t^T k_t) + beta_t v_t^T k_t):

    S_t = alpha_t (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t
    o_t = scale * q_t S_t

equivalently: decay, then replace what k_t reads by v_t at rate beta_t, with the new value
delta_t = beta_t (v_t - k_t alpha_t S_{t-1}).

`chunk_gated_delta_rule` is the chunked algorithm with the UT (WY) representation: within a
chunk of L positions with c_i = g_1 + ... + g_i and entering state S_0, the new values solve the
unit lower-triangular system (I + A) delta = beta v - beta exp(c) k S_0 with
A[j, m] = beta_j exp(c_j - c_m) k_j . k_m for m < j, so delta = U - W S_0 where U and W come
from one triangular solve per chunk, for all chunks at once. Passing the state from chunk to
chunk needs only W S_0 (one [L, K] x [K, V] product per chunk); the outputs are then formed for
all chunks together. Every exp is of a difference <= 0, so nothing overflows.

`gated_delta_rule_sequential` is the plain recurrence, one position at a time. A step with
g_t = 0 and beta_t = 0 is an identity step (padding, `lengths`).
"""

from __future__ import annotations

import torch

from bytelm.kernels.chunked import (
    causal_mask,
    compute_dtype,
    from_chunks,
    pair_decay,
    real_positions,
    to_chunks,
    zero_padding,
)


def check_inputs(q, k, v, g, beta, initial_state) -> None:
    """Raise ValueError naming the first argument whose shape does not fit q [B, T, H, K]."""
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, T, H, K], got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, T, H, V] with B, T, H = {tuple(q.shape[:3])}, got {tuple(v.shape)}")
    if g.shape != q.shape[:3] or beta.shape != q.shape[:3]:
        raise ValueError(f"g and beta must be [B, T, H] = {tuple(q.shape[:3])}, got {tuple(g.shape)}, {tuple(beta.shape)}")
    state = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
    if initial_state is not None and initial_state.shape != state:
        raise ValueError(f"initial_state must be [B, H, K, V] = {state}, got {tuple(initial_state.shape)}")


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked gated delta rule. q, k [B, T, H, K], v [B, T, H, V], g, beta [B, T, H],
    initial_state [B, H, K, V], lengths [B]. Returns o [B, T, H, V] (v's dtype) and the final
    state [B, H, K, V] (float32, or float64)."""
    check_inputs(q, k, v, g, beta, initial_state)
    bsz, seqlen, heads, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    cdt = compute_dtype(v.dtype)
    g, beta = zero_padding(real_positions(lengths, bsz, seqlen, q.device), g, beta)
    L = chunk_size
    qc, kc, vc = (to_chunks(t, L, cdt) for t in (q * scale, k, v))  # [b, h, c, l, *]
    gc, bc = (to_chunks(t[..., None], L, cdt) for t in (g, beta))  # [b, h, c, l, 1]
    c = gc.cumsum(dim=-2)  # [b, h, c, l, 1]
    decay = pair_decay(c, c, causal_mask(L, q.device))[..., 0]  # [b, h, c, l, l], j <= i

    # UT transform: (I + A) delta = beta v - beta exp(c) k S_0, A strictly lower triangular.
    gram = kc @ kc.transpose(-1, -2)  # [b, h, c, l, l]
    eye = torch.eye(L, dtype=cdt, device=q.device)
    lower = eye + (bc * gram * decay).tril(-1)
    u = torch.linalg.solve_triangular(lower, bc * vc, upper=False, unitriangular=True)  # [b, h, c, l, V]
    w = torch.linalg.solve_triangular(lower, bc * torch.exp(c) * kc, upper=False, unitriangular=True)

    # State passing: delta of each chunk needs the state entering it.
    to_end = kc * torch.exp(c[..., -1:, :] - c)  # [b, h, c, l, K]
    through = torch.exp(c[..., -1, 0])  # [b, h, c]
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=q.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    entering, deltas = [], []
    for i in range(qc.shape[2]):
        delta = u[:, :, i] - w[:, :, i] @ state  # [b, h, l, V]
        entering.append(state)
        deltas.append(delta)
        state = through[:, :, i, None, None] * state + to_end[:, :, i].transpose(-1, -2) @ delta
    entering, delta = torch.stack(entering, dim=2), torch.stack(deltas, dim=2)  # [b, h, c, K|l, V]

    scores = (qc @ kc.transpose(-1, -2)) * decay  # [b, h, c, l, l]
    o = (qc * torch.exp(c)) @ entering + scores @ delta  # [b, h, c, l, V]
    return from_chunks(o, seqlen).to(v.dtype), state


def gated_delta_rule_sequential(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence one position at a time: (o [B, T, H, V], final state [B, H, K, V])."""
    check_inputs(q, k, v, g, beta, initial_state)
    bsz, seqlen, heads, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    cdt = compute_dtype(v.dtype)
    g, beta = zero_padding(real_positions(lengths, bsz, seqlen, q.device), g, beta)
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=q.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    outs = []
    for t in range(seqlen):
        kt, vt = k[:, t].to(cdt), v[:, t].to(cdt)  # [B, H, K], [B, H, V]
        state = torch.exp(g[:, t].to(cdt))[..., None, None] * state
        delta = beta[:, t, :, None].to(cdt) * (vt - torch.einsum("bhk,bhkv->bhv", kt, state))
        state = state + kt[..., :, None] * delta[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t].to(cdt) * scale, state))
    return torch.stack(outs, dim=1).to(v.dtype), state
