"""Gated linear attention (GLA, arXiv 2312.06635) in pure PyTorch: the specification.

Per head, with a log-gate g_t <= 0 per key channel (alpha_t = exp(g_t)) and the state
S [K, V] (the paper's orientation):

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t
    o_t = scale * q_t S_t

`chunk_gla` is the chunked algorithm: within a chunk of L positions the gates are cumulative
sums in log space, c_i = g_1 + ... + g_i, and every product of gates is exp of a difference
that is <= 0 (position i against an earlier j, or the chunk's end against j), so the products
stay finite for any decay and any chunk length. The intra-chunk scores are formed from the
pairwise decays [L, L, K]; the state entering each chunk is passed on from the previous one
(one decay and one add per chunk). Nothing loops over positions, so autograd differentiates it.

`gla_sequential` is the plain recurrence, one position at a time; tests check the chunked form
against it. A step with g_t = 0 and k_t = 0 is an identity step (padding, `lengths`).
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


def check_inputs(q, k, v, g, initial_state) -> None:
    """Raise ValueError naming the first argument whose shape does not fit q [B, T, H, K]."""
    if q.dim() != 4:
        raise ValueError(f"q must be [B, T, H, K], got shape {tuple(q.shape)}")
    if k.shape != q.shape or g.shape != q.shape:
        raise ValueError(f"k and g must be [B, T, H, K] = {tuple(q.shape)}, got {tuple(k.shape)}, {tuple(g.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, T, H, V] with B, T, H = {tuple(q.shape[:3])}, got {tuple(v.shape)}")
    state = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
    if initial_state is not None and initial_state.shape != state:
        raise ValueError(f"initial_state must be [B, H, K, V] = {state}, got {tuple(initial_state.shape)}")


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked GLA. q, k, g [B, T, H, K], v [B, T, H, V], initial_state [B, H, K, V], lengths [B].

    Returns o [B, T, H, V] (v's dtype) and the final state [B, H, K, V] (float32, or float64).
    """
    check_inputs(q, k, v, g, initial_state)
    bsz, seqlen, heads, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    cdt = compute_dtype(v.dtype)
    k, g = zero_padding(real_positions(lengths, bsz, seqlen, q.device), k, g)
    L = chunk_size
    qc, kc, vc, gc = (to_chunks(t, L, cdt) for t in (q * scale, k, v, g))  # [b, h, c, l, *]
    c = gc.cumsum(dim=-2)  # [b, h, c, l, K] log-decay from the chunk's start
    c_end = c[..., -1:, :]  # [b, h, c, 1, K]

    # Intra-chunk: scores[i, j] = sum_k q_ik k_jk exp(c_ik - c_jk) for j <= i.
    decay = pair_decay(c, c, causal_mask(L, q.device))  # [b, h, c, l, l, K]
    scores = torch.einsum("...ijk,...jk->...ij", qc[..., :, None, :] * decay, kc)  # [b, h, c, l, l]
    o = scores @ vc  # [b, h, c, l, V]

    # What each chunk adds to the state at its end, and its total decay.
    added = (kc * torch.exp(c_end - c)).transpose(-1, -2) @ vc  # [b, h, c, K, V]
    through = torch.exp(c_end[..., 0, :])  # [b, h, c, K]

    # State passing: the state entering each chunk.
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=q.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    entering = []
    for i in range(qc.shape[2]):
        entering.append(state)
        state = through[:, :, i, :, None] * state + added[:, :, i]
    entering = torch.stack(entering, dim=2)  # [b, h, c, K, V]

    o = o + (qc * torch.exp(c)) @ entering  # [b, h, c, l, V]
    return from_chunks(o, seqlen).to(v.dtype), state


def gla_sequential(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence one position at a time: (o [B, T, H, V], final state [B, H, K, V])."""
    check_inputs(q, k, v, g, initial_state)
    bsz, seqlen, heads, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    cdt = compute_dtype(v.dtype)
    k, g = zero_padding(real_positions(lengths, bsz, seqlen, q.device), k, g)
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=q.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    outs = []
    for t in range(seqlen):
        kv = k[:, t, :, :, None].to(cdt) * v[:, t, :, None, :].to(cdt)  # [B, H, K, V]
        state = torch.exp(g[:, t].to(cdt))[..., None] * state + kv
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t].to(cdt) * scale, state))
    return torch.stack(outs, dim=1).to(v.dtype), state
