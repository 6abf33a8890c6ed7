"""Sliding-window causal attention with sinks in blocked PyTorch: the specification.

Query t attends to keys t - window + 1 .. t (clipped at 0) and to the sink keys 0 .. sinks - 1,
each key counted once, softmax scale 1/sqrt(D). With `seq_idx`, a query sees only keys of its
own segment (a new segment starts wherever the id changes), and the sinks are the first `sinks`
positions of each segment.

The time axis is cut into blocks of `window` positions; each query block is scored against its
own and the previous key block (which together hold its whole window) and against the sinks.
Without seq_idx every query shares the same sinks, and each block is one call of PyTorch's fused
`scaled_dot_product_attention` with a block mask (forward and backward on 2 CPU cores, against
the composed einsums: 2.3-2.5x faster at the tiny recipes' shapes, 4.4x at 8K positions); with
seq_idx the sinks are gathered per query and the scores are composed ops. Cost and autograd
memory are O(T * window), never O(T^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    sinks: int,
    seq_idx: torch.Tensor | None,
) -> None:
    """Raise ValueError naming the first argument that does not fit q [B, T, H, D]."""
    if q.dim() != 4:
        raise ValueError(f"q must be [B, T, H, D], got shape {tuple(q.shape)}")
    b, t, h, d = q.shape
    if k.dim() != 4 or k.shape[:2] != (b, t) or k.shape[3] != d or v.shape != k.shape:
        raise ValueError(
            f"k and v must both be [B, T, Hkv, D] with B, T, D = {(b, t, d)}, "
            f"got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if h % k.shape[2] != 0:
        raise ValueError(f"query heads H={h} must be divisible by KV heads Hkv={k.shape[2]}")
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    if sinks < 0:
        raise ValueError(f"sinks must be non-negative, got {sinks}")
    if seq_idx is not None and seq_idx.shape != (b, t):
        raise ValueError(f"seq_idx must be [B, T] = {(b, t)}, got {tuple(seq_idx.shape)}")


def segment_starts(seq_idx: torch.Tensor | None, bsz: int, seqlen: int, device) -> torch.Tensor:
    """First position of each position's segment, [B, T] int64 (all zeros without seq_idx)."""
    if seq_idx is None:
        return torch.zeros(bsz, seqlen, dtype=torch.long, device=device)
    pos = torch.arange(seqlen, device=device).expand(bsz, seqlen)
    change = torch.ones(bsz, seqlen, dtype=torch.bool, device=device)  # [B, T]
    change[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
    return torch.where(change, pos, torch.zeros_like(pos)).cummax(dim=1).values


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    sinks: int = 0,
    seq_idx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Blocked sliding-window attention with sinks. q [B, T, H, D], k/v [B, T, Hkv, D] -> [B, T, H, D]."""
    check_inputs(q, k, v, window, sinks, seq_idx)
    out_dtype = q.dtype
    cdt = torch.float64 if q.dtype == torch.float64 else torch.float32
    q, k, v = q.to(cdt), k.to(cdt), v.to(cdt)
    if seq_idx is None:
        return _shared_sinks(q, k, v, window, sinks).to(out_dtype)
    return _segment_sinks(q, k, v, window, sinks, seq_idx).to(out_dtype)


def _blocks(t: torch.Tensor, bs: int) -> torch.Tensor:
    """[B, T, H, D] -> [B, nb, bs, H, D], the time axis zero-padded to whole blocks."""
    bsz, seqlen = t.shape[:2]
    pad = (-seqlen) % bs
    return F.pad(t, (0, 0, 0, 0, 0, pad)).reshape(bsz, (seqlen + pad) // bs, bs, *t.shape[2:])


def _with_previous(tb: torch.Tensor) -> torch.Tensor:
    """[B, nb, bs, H, D] -> [B, nb, 2bs, H, D]: each block after the one before it (zeros first)."""
    return torch.cat([F.pad(tb, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1], tb], dim=2)


def _window_mask(nb: int, bs: int, window: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(query positions [nb, bs], keep [nb, bs, 2bs]): the keys of `_with_previous` in each window."""
    qpos = torch.arange(nb * bs, device=device).reshape(nb, bs)  # [nb, bs]
    kpos = qpos[:, :1] - bs + torch.arange(2 * bs, device=device)  # [nb, 2bs]
    dist = qpos[:, :, None] - kpos[:, None, :]  # [nb, bs, 2bs]
    return qpos, (dist >= 0) & (dist < window) & (kpos[:, None, :] >= 0)


def _shared_sinks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, sinks: int) -> torch.Tensor:
    """One segment per row: every query block sees its window keys and the sinks 0 .. sinks - 1
    (fewer in a shorter sequence), the sinks only outside the window; one fused SDPA call."""
    bsz, seqlen, nheads, dim = q.shape
    nkv = k.shape[2]
    bs = min(window, seqlen)
    qb = _blocks(q, bs)  # [B, nb, bs, H, D]
    nb = qb.shape[1]
    keys, values = [_with_previous(_blocks(k, bs))], [_with_previous(_blocks(v, bs))]
    qpos, win_ok = _window_mask(nb, bs, window, q.device)
    keep = [win_ok]
    if sinks > 0:
        n_sinks = min(sinks, seqlen)
        keys.append(k[:, None, :n_sinks].expand(-1, nb, -1, -1, -1))  # [B, nb, S, Hkv, D]
        values.append(v[:, None, :n_sinks].expand(-1, nb, -1, -1, -1))
        keep.append(qpos[:, :, None] - torch.arange(n_sinks, device=q.device) >= window)  # [nb, bs, S]
    kk = torch.cat(keys, dim=2).reshape(bsz * nb, -1, nkv, dim).transpose(1, 2)  # [B nb, Hkv, K, D]
    vv = torch.cat(values, dim=2).reshape(bsz * nb, -1, nkv, dim).transpose(1, 2)
    mask = torch.cat(keep, dim=-1).expand(bsz, -1, -1, -1).reshape(bsz * nb, 1, bs, -1)  # [B nb, 1, bs, K]
    o = F.scaled_dot_product_attention(
        qb.reshape(bsz * nb, bs, nheads, dim).transpose(1, 2), kk, vv, attn_mask=mask,
        enable_gqa=nheads != nkv,
    )  # [B nb, H, bs, D]
    return o.transpose(1, 2).reshape(bsz, nb * bs, nheads, dim)[:, :seqlen]


def _segment_sinks(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, sinks: int, seq_idx: torch.Tensor
) -> torch.Tensor:
    """Several segments per row: a query sees its segment's keys only, and sink j of query t is
    position start[t] + j (counted only outside the window), gathered per query."""
    bsz, seqlen, nheads, dim = q.shape
    nkv = k.shape[2]
    rep = nheads // nkv
    scale = 1.0 / math.sqrt(dim)
    bs = min(window, seqlen)
    device = q.device
    qb = _blocks(q, bs).reshape(bsz, -1, bs, nkv, rep, dim)  # [B, nb, bs, Hkv, rep, D]
    nb = qb.shape[1]
    pad = nb * bs - seqlen
    k2, v2 = _with_previous(_blocks(k, bs)), _with_previous(_blocks(v, bs))  # [B, nb, 2bs, Hkv, D]

    start = F.pad(segment_starts(seq_idx, bsz, seqlen, device), (0, pad), mode="replicate")  # [B, Tp]
    qstart = start.reshape(bsz, nb, bs)  # [B, nb, bs]
    kstart = torch.cat([F.pad(qstart, (0, 0, 1, 0))[:, :-1], qstart], dim=2)  # [B, nb, 2bs]
    _, win_ok = _window_mask(nb, bs, window, device)
    win_ok = win_ok & (qstart[..., None] == kstart[:, :, None, :])  # [B, nb, bs, 2bs]
    s_win = torch.einsum("bnigrd,bnjgd->bngrij", qb, k2) * scale  # [B, nb, Hkv, rep, bs, 2bs]
    parts = [s_win.masked_fill(~win_ok[:, :, None, None], float("-inf"))]

    if sinks > 0:
        sink_pos = start[:, :, None] + torch.arange(sinks, device=device)  # [B, Tp, S]
        tpos = torch.arange(nb * bs, device=device)[None, :, None]  # [1, Tp, 1]
        sink_ok = (tpos - sink_pos >= window).reshape(bsz, nb, bs, sinks)  # [B, nb, bs, S]
        idx = sink_pos.clamp(max=nb * bs - 1).reshape(bsz, -1)  # [B, Tp*S]
        rows = torch.arange(bsz, device=device)[:, None]
        kp, vp = F.pad(k, (0, 0, 0, 0, 0, pad)), F.pad(v, (0, 0, 0, 0, 0, pad))
        k_s = kp[rows, idx].reshape(bsz, nb, bs, sinks, nkv, dim)
        v_s = vp[rows, idx].reshape(bsz, nb, bs, sinks, nkv, dim)
        s_sink = torch.einsum("bnigrd,bnisgd->bngris", qb, k_s) * scale  # [B, nb, Hkv, rep, bs, S]
        parts.append(s_sink.masked_fill(~sink_ok[:, :, None, None], float("-inf")))

    p = torch.softmax(torch.cat(parts, dim=-1), dim=-1)
    o = torch.einsum("bngrij,bnjgd->bnigrd", p[..., : 2 * bs], v2)  # [B, nb, bs, Hkv, rep, D]
    if sinks > 0:
        o = o + torch.einsum("bngris,bnisgd->bnigrd", p[..., 2 * bs :], v_s)
    return o.reshape(bsz, nb * bs, nheads, dim)[:, :seqlen]
