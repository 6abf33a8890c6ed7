"""The SSD chunked scan in pure PyTorch: the specification every faster kernel must match.

Per head h with scalar decay A[h] < 0 and step dt_t > 0:

    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T        # [P, N]
    y_t = h_t C_t + D x_t                              # [P]

`chunk_scan` computes it with the chunked algorithm of Mamba-2 (as in mamba's `ssd_minimal`):
inside each chunk of `chunk_size` positions a masked decay matrix turns the recurrence into
attention-like products (`intra.py`); across chunks, per-chunk states are passed with the chunk
decays, one chunk at a time. Nothing loops over positions, so autograd differentiates it in
O(T * chunk_size) memory.

Sequence ids: `seq_idx[b, t]` splits a row into segments; a new segment starts wherever the id
differs from the previous position's, from a zero state, and positions of different segments
never interact. The initial state belongs to the row's first segment.

`chunk_scan_sequential` is the plain recurrence, one position at a time; tests use it to check
the chunked form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bytelm.kernels.chunked import causal_mask
from bytelm.kernels.ssd.intra import intra_chunk


def check_inputs(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    seq_idx: torch.Tensor | None,
) -> None:
    """Raise ValueError naming the first argument whose shape does not fit x [B, T, H, P]."""
    if x.dim() != 4:
        raise ValueError(f"x must be [B, T, H, P], got shape {tuple(x.shape)}")
    b, t, h, p = x.shape
    if dt.shape != (b, t, h):
        raise ValueError(f"dt must be [B, T, H] = {(b, t, h)}, got {tuple(dt.shape)}")
    if A.shape != (h,):
        raise ValueError(f"A must be [H] = ({h},), got {tuple(A.shape)}")
    if B.dim() != 4 or B.shape[:2] != (b, t) or C.shape != B.shape:
        raise ValueError(
            f"B and C must both be [B, T, G, N] with B, T = {(b, t)}, "
            f"got {tuple(B.shape)} and {tuple(C.shape)}"
        )
    g, n = B.shape[2], B.shape[3]
    if h % g != 0:
        raise ValueError(f"heads H={h} must be divisible by groups G={g}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if D is not None and D.shape != (h,):
        raise ValueError(f"D must be [H] = ({h},), got {tuple(D.shape)}")
    if initial_state is not None and initial_state.shape != (b, h, p, n):
        raise ValueError(
            f"initial_state must be [B, H, P, N] = {(b, h, p, n)}, got {tuple(initial_state.shape)}"
        )
    if seq_idx is not None and seq_idx.shape != (b, t):
        raise ValueError(f"seq_idx must be [B, T] = {(b, t)}, got {tuple(seq_idx.shape)}")


def segment_ids(seq_idx: torch.Tensor) -> torch.Tensor:
    """Running segment number [B, T] int64: 0 at t=0, +1 wherever the id changes."""
    change = torch.zeros_like(seq_idx, dtype=torch.long)  # [B, T]
    change[:, 1:] = (seq_idx[:, 1:] != seq_idx[:, :-1]).long()
    return change.cumsum(dim=1)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def chunk_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    seq_idx: torch.Tensor | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan. Shapes as in `bytelm.kernels.ssd.chunk_scan`.

    x [B, T, H, P], dt [B, T, H], A [H], B and C [B, T, G, N], D [H], initial_state [B, H, P, N],
    seq_idx [B, T]. Returns y [B, T, H, P] (x's dtype) and optionally the final state
    [B, H, P, N] (float32, or float64 for float64 inputs).

    Heads are laid out as (group g, head within the group r), so the C B^T products are formed
    once per group and every contraction is a batched matrix product.
    """
    check_inputs(x, dt, A, B, C, chunk_size, D, initial_state, seq_idx)
    bsz, seqlen, nheads, headdim = x.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    rep = nheads // ngroups
    cdt = compute_dtype(x.dtype)
    L = chunk_size
    pad = (-seqlen) % L
    nchunks = (seqlen + pad) // L

    def chunked(t: torch.Tensor) -> torch.Tensor:
        """Pad the time axis with zeros (dt = 0: an identity step) and split it into chunks."""
        t = t.to(cdt)
        t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
        return t.reshape(bsz, nchunks, L, *t.shape[2:])

    xc = chunked(x)  # [b, c, l, h, p]
    dtc = chunked(dt)  # [b, c, l, h]
    Bc = chunked(B).transpose(2, 3)  # [b, c, g, l, n]
    Cc = chunked(C).transpose(2, 3)  # [b, c, g, l, n]
    a = (dtc * A.to(cdt)).transpose(2, 3).reshape(bsz, nchunks, ngroups, rep, L)  # [b, c, g, r, l]
    a_cs = a.cumsum(dim=-1)  # [b, c, g, r, l]
    xdt = (xc * dtc[..., None]).reshape(bsz, nchunks, L, ngroups, rep, headdim)
    xdt = xdt.permute(0, 1, 3, 4, 2, 5)  # [b, c, g, r, l, p]

    # seg[b, c, l]: segment of each position; padding continues the last segment. Without
    # seq_idx there is one segment and every segment mask below is all true, so it is skipped.
    seg = None
    if seq_idx is not None:
        seg = F.pad(segment_ids(seq_idx), (0, pad), mode="replicate").reshape(bsz, nchunks, L)

    # 1. Intra-chunk output: attention-like with the masked decay matrix.
    keep = causal_mask(L, x.device)  # [l, s]
    if seg is not None:
        keep = keep & (seg[:, :, None, None, :, None] == seg[:, :, None, None, None, :])  # [b, c, 1, 1, l, s]
    y = intra_chunk(Cc @ Bc.transpose(-1, -2), a_cs, xdt, keep)  # [b, c, g, r, l, p]

    # 2. Chunk states: what each chunk adds to the state at its last position.
    to_end = torch.exp(a_cs[..., -1:] - a_cs)  # [b, c, g, r, l]
    if seg is not None:
        to_end = to_end * (seg == seg[:, :, -1:])[:, :, None, None].to(cdt)
    weighted = (xdt * to_end[..., None]).transpose(-1, -2)  # [b, c, g, r, p, l]
    states = weighted.reshape(bsz, nchunks, ngroups, rep * headdim, L) @ Bc  # [b, c, g, r p, n]
    states = states.reshape(bsz, nchunks, nheads, headdim, dstate)

    # 3. State passing, linear in the chunks: h <- g h + S chunk by chunk, where g is the chunk's
    # total decay, 0 when a new segment starts inside it. states[:, k] is the state entering
    # chunk k, index c the final one.
    gate = torch.exp(a_cs[..., -1]).reshape(bsz, nchunks, nheads)  # [b, c, h]
    if seg is not None:
        seg_edge = F.pad(seg[:, :, -1], (1, 0))  # [b, c+1]; the initial state is segment 0
        gate = gate * (seg_edge[:, 1:] == seg_edge[:, :-1])[..., None].to(cdt)
    if initial_state is None:
        running = torch.zeros(bsz, nheads, headdim, dstate, dtype=cdt, device=x.device)
    else:
        running = initial_state.to(cdt)
    passed = [running]
    for k in range(nchunks):
        running = running * gate[:, k, :, None, None] + states[:, k]  # [b, h, p, n]
        passed.append(running)
    states = torch.stack(passed, dim=1)  # [b, c+1, h, p, n]
    final_state = running

    # 4. Inter-chunk output: the state entering each chunk, decayed to each position.
    from_start = torch.exp(a_cs)  # [b, c, g, r, l]
    if seg is not None:
        from_start = from_start * (seg == seg_edge[:, :-1, None])[:, :, None, None].to(cdt)
    entering = states[:, :-1].reshape(bsz, nchunks, ngroups, rep * headdim, dstate)
    y_in = (Cc @ entering.transpose(-1, -2)).reshape(bsz, nchunks, ngroups, L, rep, headdim)
    y = y + y_in.transpose(3, 4) * from_start[..., None]  # [b, c, g, r, l, p]

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(bsz, nchunks * L, nheads, headdim)
    if D is not None:
        y = y + xc.reshape(bsz, nchunks * L, nheads, headdim) * D.to(cdt)[:, None]
    y = y[:, :seqlen].to(x.dtype)
    return (y, final_state) if return_final_state else y


def chunk_scan_sequential(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    seq_idx: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence one position at a time: (y [B, T, H, P], final state [B, H, P, N])."""
    check_inputs(x, dt, A, B, C, 1, D, initial_state, seq_idx)
    bsz, seqlen, nheads, headdim = x.shape
    rep = nheads // B.shape[2]
    Bh = B.repeat_interleave(rep, dim=2)  # [b, t, h, n]
    Ch = C.repeat_interleave(rep, dim=2)  # [b, t, h, n]
    state = torch.zeros(bsz, nheads, headdim, B.shape[3], dtype=x.dtype, device=x.device)
    if initial_state is not None:
        state = initial_state.to(x.dtype)
    ys = []
    for t in range(seqlen):
        if seq_idx is not None and t > 0:
            keep = (seq_idx[:, t] == seq_idx[:, t - 1]).to(x.dtype)  # [b]
            state = state * keep[:, None, None, None]
        decay = torch.exp(dt[:, t] * A)  # [b, h]
        inp = torch.einsum("bhp,bhn->bhpn", x[:, t] * dt[:, t, :, None], Bh[:, t])
        state = state * decay[..., None, None] + inp
        y = torch.einsum("bhpn,bhn->bhp", state, Ch[:, t])
        if D is not None:
            y = y + x[:, t] * D[:, None]
        ys.append(y)
    return torch.stack(ys, dim=1), state
