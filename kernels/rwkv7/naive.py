"""RWKV-7's generalised delta rule (diagonal plus low-rank transition) in pure PyTorch: the
specification.

Per head, with a log-decay w_t <= 0 per key channel, vectors a_t and b_t [K] and the state
S [K, V] (flash-linear-attention's orientation; RWKV-7's own code keeps the transpose):

    S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t
    o_t = scale * q_t S_t

RWKV-7 takes a = -kappa_hat (the normalised removal key) and b = kappa_hat * a_icl (times the
in-context learning rate), so the low-rank term removes part of what kappa_hat reads.

`chunk_rwkv7` is the chunked algorithm: within a chunk of L positions with c_i = w_1 + ... + w_i
(and c'_i = c_{i-1}), the values read before each write, z_i = a_i S_{i-1}, solve the unit
lower-triangular system (I - A_ab) Z = (a exp(c')) S_0 + A_ak V, where
A_xy[i, j] = sum_k x_ik y_jk exp(c'_ik - c_jk) for j < i; so Z = W S_0 + U with W and U from
one triangular solve per chunk for all chunks at once. Passing the state on needs W S_0 per
chunk; the outputs O = scale ((q exp(c)) S_0 + A_qb Z + A_qk V) (A_qy over j <= i with c_i in
place of c'_i) are then formed for all chunks together. The in-chunk decays factor through
the chunk's middle m: exp(c'_i - c_j) = exp(c'_i - m) exp(m - c_j), so every A is one matrix
product. Each factor stays within exp(+-L/2 max|w|): finite in float32 for chunks of 16 and
w >= -5 (RWKV-7's own w is >= -e^-0.5), which is the range this op is for.

`rwkv7_sequential` is the plain recurrence, one position at a time. A step with w_t = 0,
k_t = 0 and a_t = 0 is an identity step (padding, `lengths`).
"""

from __future__ import annotations

import torch

from bytelm.kernels.chunked import (
    causal_mask,
    compute_dtype,
    from_chunks,
    real_positions,
    to_chunks,
    zero_padding,
)


def check_inputs(r, w, k, v, a, b, initial_state) -> None:
    """Raise ValueError naming the first argument whose shape does not fit r [B, T, H, K]."""
    if r.dim() != 4:
        raise ValueError(f"r must be [B, T, H, K], got shape {tuple(r.shape)}")
    for name, t in (("w", w), ("k", k), ("a", a), ("b", b)):
        if t.shape != r.shape:
            raise ValueError(f"{name} must be [B, T, H, K] = {tuple(r.shape)}, got {tuple(t.shape)}")
    if v.dim() != 4 or v.shape[:3] != r.shape[:3]:
        raise ValueError(f"v must be [B, T, H, V] with B, T, H = {tuple(r.shape[:3])}, got {tuple(v.shape)}")
    state = (r.shape[0], r.shape[2], r.shape[3], v.shape[3])
    if initial_state is not None and initial_state.shape != state:
        raise ValueError(f"initial_state must be [B, H, K, V] = {state}, got {tuple(initial_state.shape)}")


def _scores(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """out[i, j] = x_i . y_j where `mask` [L, L] keeps (i, j), 0 elsewhere: [..., L, K] x2 -> [..., L, L]."""
    return (x @ y.transpose(-1, -2)).masked_fill(~mask, 0.0)


def chunk_rwkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked RWKV-7 recurrence. r, w, k, a, b [B, T, H, K], v [B, T, H, V], initial_state
    [B, H, K, V], lengths [B]. Returns o [B, T, H, V] (v's dtype) and the final state
    [B, H, K, V] (float32, or float64)."""
    check_inputs(r, w, k, v, a, b, initial_state)
    bsz, seqlen, heads, dk = r.shape
    cdt = compute_dtype(v.dtype)
    w, k, a = zero_padding(real_positions(lengths, bsz, seqlen, r.device), w, k, a)
    L = chunk_size
    qc, wc, kc, vc, ac, bc = (to_chunks(t, L, cdt) for t in (r * scale, w, k, v, a, b))  # [b, h, c, l, *]
    c = wc.cumsum(dim=-2)  # [b, h, c, l, K]
    c_before = c - wc  # c'_i = c_{i-1}
    strict, causal = causal_mask(L, r.device, strict=True), causal_mask(L, r.device)
    mid = c[..., L // 2 : L // 2 + 1, :]  # [b, h, c, 1, K] the reference point of each chunk
    a_in, q_in = ac * torch.exp(c_before - mid), qc * torch.exp(c - mid)  # rows i
    b_out, k_out = bc * torch.exp(mid - c), kc * torch.exp(mid - c)  # columns j

    # Z = W S_0 + U from (I - A_ab) Z = (a exp(c')) S_0 + A_ak V.
    eye = torch.eye(L, dtype=cdt, device=r.device)
    lower = eye - _scores(a_in, b_out, strict)
    u = torch.linalg.solve_triangular(lower, _scores(a_in, k_out, strict) @ vc, upper=False, unitriangular=True)
    w_s0 = torch.linalg.solve_triangular(lower, ac * torch.exp(c_before), upper=False, unitriangular=True)

    # State passing.
    c_end = c[..., -1:, :]  # [b, h, c, 1, K]
    b_end, k_end = bc * torch.exp(c_end - c), kc * torch.exp(c_end - c)  # [b, h, c, l, K]
    through = torch.exp(c_end[..., 0, :])  # [b, h, c, K]
    kv_end = k_end.transpose(-1, -2) @ vc  # [b, h, c, K, V]
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=r.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    entering, zs = [], []
    for i in range(qc.shape[2]):
        z = w_s0[:, :, i] @ state + u[:, :, i]  # [b, h, l, V]
        entering.append(state)
        zs.append(z)
        state = through[:, :, i, :, None] * state + b_end[:, :, i].transpose(-1, -2) @ z + kv_end[:, :, i]
    entering, z = torch.stack(entering, dim=2), torch.stack(zs, dim=2)  # [b, h, c, K|l, V]

    o = (qc * torch.exp(c)) @ entering + _scores(q_in, b_out, causal) @ z + _scores(q_in, k_out, causal) @ vc
    return from_chunks(o, seqlen).to(v.dtype), state


def rwkv7_sequential(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence one position at a time: (o [B, T, H, V], final state [B, H, K, V])."""
    check_inputs(r, w, k, v, a, b, initial_state)
    bsz, seqlen, heads, dk = r.shape
    cdt = compute_dtype(v.dtype)
    w, k, a = zero_padding(real_positions(lengths, bsz, seqlen, r.device), w, k, a)
    state = torch.zeros(bsz, heads, dk, v.shape[-1], dtype=cdt, device=r.device)
    if initial_state is not None:
        state = initial_state.to(cdt)
    outs = []
    for t in range(seqlen):
        read = torch.einsum("bhk,bhkv->bhv", a[:, t].to(cdt), state)  # a_t S_{t-1}
        kv = k[:, t, :, :, None].to(cdt) * v[:, t, :, None, :].to(cdt)
        state = torch.exp(w[:, t].to(cdt))[..., None] * state + b[:, t, :, :, None].to(cdt) * read[..., None, :] + kv
        outs.append(torch.einsum("bhk,bhkv->bhv", r[:, t].to(cdt) * scale, state))
    return torch.stack(outs, dim=1).to(v.dtype), state
