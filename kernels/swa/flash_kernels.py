"""The Triton kernels of sliding-window attention; `flash.py` launches them and holds the
algorithm's description.
"""

from __future__ import annotations

import triton
import triton.language as tl

from bytelm.kernels.triton_utils import (
    dot,
    launch_configs,
    row_offsets,
)


@triton.jit
def _mask(o_q, o_k, b_sq, b_sk, T, W, S, HAS_SEQ: tl.constexpr):
    """[BM, BN] bool: which keys o_k each query o_q attends to."""
    m = (o_k[None, :] <= o_q[:, None]) & (o_k < T)[None, :] & (o_q < T)[:, None]
    b_near = (o_q[:, None] - o_k[None, :]) < W
    if HAS_SEQ:
        m = m & (b_sq[:, None] == b_sk[None, :])
        b_sink = (o_k[None, :] - b_sq[:, None]) < S
    else:
        b_sink = (o_k < S)[None, :]
    return m & (b_near | b_sink)


@triton.jit
def _rows(
    i_b, t_lo, i_h, T, NH: tl.constexpr, D: tl.constexpr, BD: tl.constexpr, BLOCK: tl.constexpr
):
    """Offsets and mask of rows t_lo .. t_lo + BLOCK - 1 of head i_h in a [B, T, NH, D]
    tensor, [BLOCK, BD]. Loads through them read zeros outside."""
    o_l, o_d = tl.arange(0, BLOCK), tl.arange(0, BD)
    p = row_offsets(i_b * T + t_lo, i_h, NH, D, o_l, o_d)
    return p, (t_lo + o_l < T)[:, None] & (o_d < D)[None, :]


@triton.jit
def _load_starts(start, i_b, o_t, T, HAS_SEQ: tl.constexpr):
    """Segment start of each position (zeros without sequence ids)."""
    if HAS_SEQ:
        return tl.load(start + i_b * T + o_t, mask=o_t < T, other=0)
    return tl.zeros(o_t.shape, dtype=tl.int32)


@triton.jit
def _load_keys(
    k,
    v,
    start,
    i_b,
    k0,
    i_hk,
    T,
    HKV: tl.constexpr,
    D: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BN: tl.constexpr,
    BD: tl.constexpr,
    DOT: tl.constexpr,
):
    """Keys k0 .. k0 + BN - 1 of KV head i_hk: positions [BN], K and V [BN, BD], segment starts
    [BN]."""
    o_k = k0 + tl.arange(0, BN)  # [BN]
    p_kv, m_kv = _rows(i_b, k0, i_hk, T, HKV, D, BD, BN)
    b_k = tl.load(k + p_kv, mask=m_kv, other=0.0).to(DOT)  # [BN, BD]
    b_v = tl.load(v + p_kv, mask=m_kv, other=0.0).to(DOT)  # [BN, BD]
    return o_k, b_k, b_v, _load_starts(start, i_b, o_k, T, HAS_SEQ)


@triton.jit
def _load_queries(
    q,
    do,
    lse,
    delta,
    start,
    i_b,
    q0,
    i_h,
    T,
    H: tl.constexpr,
    D: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BM: tl.constexpr,
    BD: tl.constexpr,
    DOT: tl.constexpr,
):
    """What the backward needs of queries q0 .. q0 + BM - 1 of head i_h: positions [BM], Q and
    dO [BM, BD], lse and delta [BM], segment starts [BM]."""
    o_q = q0 + tl.arange(0, BM)  # [BM]
    m_q = o_q < T
    p_q, m_qd = _rows(i_b, q0, i_h, T, H, D, BD, BM)
    b_q = tl.load(q + p_q, mask=m_qd, other=0.0).to(DOT)  # [BM, BD]
    b_do = tl.load(do + p_q, mask=m_qd, other=0.0).to(DOT)  # [BM, BD]
    b_lse = tl.load(lse + (i_b * T + o_q) * H + i_h, mask=m_q, other=0.0)  # [BM]
    b_delta = tl.load(delta + (i_b * T + o_q) * H + i_h, mask=m_q, other=0.0)  # [BM]
    return o_q, b_q, b_do, b_lse, b_delta, _load_starts(start, i_b, o_q, T, HAS_SEQ)


@triton.jit
def _scores(
    b_q, b_k, o_q, o_k, b_sq, b_sk, T, W, S, qk_scale, HAS_SEQ: tl.constexpr, IEEE: tl.constexpr
):
    """[BM, BN] fp32 scores Q K^T * qk_scale (base 2), -inf for the pairs the mask excludes."""
    b_s = dot(b_q, tl.trans(b_k), IEEE) * qk_scale  # [BM, BN]
    return tl.where(_mask(o_q, o_k, b_sq, b_sk, T, W, S, HAS_SEQ), b_s, float("-inf"))


@triton.jit
def _probs_grads(b_s, b_lse, b_delta, b_do, b_v, IEEE: tl.constexpr):
    """Probabilities P = exp2(s - lse) and score gradients dS = P * (dO V^T - delta), [BM, BN]."""
    b_p = tl.exp2(b_s - b_lse[:, None])  # [BM, BN]
    b_dp = dot(b_do, tl.trans(b_v), IEEE)  # [BM, BN]
    return b_p, b_p * (b_dp - b_delta[:, None])


@triton.jit
def _key_blocks(
    start, i_b, q_lo, T, W, S, HAS_SEQ: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr
):
    """The key blocks of a query block: the sink blocks before its window, then the window.

    The two block-aligned ranges are disjoint. Returns (sink_lo, n_sink, win_lo, n_blocks):
    block i < n_sink starts at sink_lo + i * BN, later ones at win_lo + (i - n_sink) * BN.
    """
    win_lo = (tl.maximum(q_lo - W + 1, 0) // BN) * BN
    win_hi = tl.minimum(q_lo + BM, T)
    if HAS_SEQ:
        s_min = tl.load(start + i_b * T + q_lo)
    else:
        s_min = q_lo * 0
    sink_lo = (s_min // BN) * BN
    sink_hi = tl.minimum(s_min + S, win_lo)
    n_sink = tl.cdiv(tl.maximum(sink_hi - sink_lo, 0), BN)
    return sink_lo, n_sink, win_lo, n_sink + tl.cdiv(win_hi - win_lo, BN)


@triton.jit
def _key_start(i, sink_lo, n_sink, win_lo, BN: tl.constexpr):
    """First key of the i-th block `_key_blocks` describes."""
    return tl.where(i < n_sink, sink_lo + i * BN, win_lo + (i - n_sink) * BN)


@triton.jit
def _query_program(H: tl.constexpr, HKV: tl.constexpr, BM: tl.constexpr):
    """(batch row, head, KV head, first query) of a program of the grid (query blocks, B * H)."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    return i_b, i_h, i_h // (H // HKV), i_m * BM


@triton.autotune(configs=launch_configs(), key=["H", "HKV", "D", "HAS_SEQ", "DOT"])
@triton.jit
def swa_fwd_kernel(
    q,
    k,
    v,
    start,
    o,
    lse,
    T,
    W,
    S,
    qk_scale,
    H: tl.constexpr,
    HKV: tl.constexpr,
    D: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BD: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    i_b, i_h, i_hk, q_lo = _query_program(H, HKV, BM)
    o_q = q_lo + tl.arange(0, BM)  # [BM]
    p_q, m_qd = _rows(i_b, q_lo, i_h, T, H, D, BD, BM)
    b_q = tl.load(q + p_q, mask=m_qd, other=0.0).to(DOT)  # [BM, BD]
    b_sq = _load_starts(start, i_b, o_q, T, HAS_SEQ)
    b_m = tl.full([BM], -1e30, dtype=tl.float32)
    b_l = tl.zeros([BM], dtype=tl.float32)
    b_acc = tl.zeros([BM, BD], dtype=tl.float32)
    sink_lo, n_sink, win_lo, n_blocks = _key_blocks(start, i_b, q_lo, T, W, S, HAS_SEQ, BM, BN)
    for i in range(0, n_blocks):
        k0 = _key_start(i, sink_lo, n_sink, win_lo, BN)
        o_k, b_k, b_v, b_sk = _load_keys(
            k, v, start, i_b, k0, i_hk, T, HKV, D, HAS_SEQ, BN, BD, DOT
        )
        b_s = _scores(b_q, b_k, o_q, o_k, b_sq, b_sk, T, W, S, qk_scale, HAS_SEQ, IEEE)
        # Online softmax step.
        b_mn = tl.maximum(b_m, tl.max(b_s, axis=1))  # [BM]
        b_p = tl.exp2(b_s - b_mn[:, None])  # [BM, BN]
        b_alpha = tl.exp2(b_m - b_mn)  # [BM]
        b_l = b_l * b_alpha + tl.sum(b_p, axis=1)
        b_acc = b_acc * b_alpha[:, None] + dot(b_p.to(b_v.dtype), b_v, IEEE)  # [BM, BD]
        b_m = b_mn
    b_l = tl.where(b_l == 0.0, 1.0, b_l)  # rows past T only
    tl.store(o + p_q, (b_acc / b_l[:, None]).to(o.dtype.element_ty), mask=m_qd)
    tl.store(lse + (i_b * T + o_q) * H + i_h, b_m + tl.log2(b_l), mask=o_q < T)


@triton.autotune(configs=launch_configs(), key=["H", "HKV", "D", "HAS_SEQ", "DOT"])
@triton.jit
def swa_bwd_dq_kernel(
    q,
    k,
    v,
    start,
    do,
    lse,
    delta,
    dq,
    T,
    W,
    S,
    qk_scale,
    sm_scale,
    H: tl.constexpr,
    HKV: tl.constexpr,
    D: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BD: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    i_b, i_h, i_hk, q_lo = _query_program(H, HKV, BM)
    o_q, b_q, b_do, b_lse, b_delta, b_sq = _load_queries(
        q, do, lse, delta, start, i_b, q_lo, i_h, T, H, D, HAS_SEQ, BM, BD, DOT
    )
    b_dq = tl.zeros([BM, BD], dtype=tl.float32)
    sink_lo, n_sink, win_lo, n_blocks = _key_blocks(start, i_b, q_lo, T, W, S, HAS_SEQ, BM, BN)
    for i in range(0, n_blocks):
        k0 = _key_start(i, sink_lo, n_sink, win_lo, BN)
        o_k, b_k, b_v, b_sk = _load_keys(
            k, v, start, i_b, k0, i_hk, T, HKV, D, HAS_SEQ, BN, BD, DOT
        )
        b_s = _scores(b_q, b_k, o_q, o_k, b_sq, b_sk, T, W, S, qk_scale, HAS_SEQ, IEEE)
        b_p, b_ds = _probs_grads(b_s, b_lse, b_delta, b_do, b_v, IEEE)  # [BM, BN]
        b_dq += dot(b_ds.to(b_k.dtype), b_k, IEEE)  # [BM, BD]
    p_q, m_qd = _rows(i_b, q_lo, i_h, T, H, D, BD, BM)
    tl.store(dq + p_q, (b_dq * sm_scale).to(dq.dtype.element_ty), mask=m_qd)


@triton.autotune(configs=launch_configs(), key=["H", "HKV", "D", "HAS_SEQ", "DOT"])
@triton.jit
def swa_bwd_dkv_kernel(
    q,
    k,
    v,
    start,
    seg_end,
    do,
    lse,
    delta,
    dk,
    dv,
    T,
    W,
    S,
    qk_scale,
    sm_scale,
    H: tl.constexpr,
    HKV: tl.constexpr,
    D: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BD: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    i_bh, i_n = tl.program_id(0).to(tl.int64), tl.program_id(1)
    i_b, i_hk = i_bh // HKV, i_bh % HKV
    k0 = i_n * BN
    o_k, b_k, b_v, b_sk = _load_keys(k, v, start, i_b, k0, i_hk, T, HKV, D, HAS_SEQ, BN, BD, DOT)
    # Queries that can see this block: its window reach, and whole segments of its sinks.
    q_lo = (k0 // BM) * BM
    q_hi = tl.minimum(k0 + BN - 1 + W, T)
    if HAS_SEQ:
        m_k = o_k < T
        b_end = tl.load(seg_end + i_b * T + o_k, mask=m_k, other=0)  # [BN]
        q_hi = tl.maximum(q_hi, tl.max(tl.where(m_k & (o_k - b_sk < S), b_end, 0), axis=0))
    else:
        q_hi = tl.where(k0 < S, T, q_hi)
    b_dk = tl.zeros([BN, BD], dtype=tl.float32)
    b_dv = tl.zeros([BN, BD], dtype=tl.float32)
    for i_r in range(0, H // HKV):
        i_h = i_hk * (H // HKV) + i_r
        for q0 in range(q_lo, q_hi, BM):
            o_q, b_q, b_do, b_lse, b_delta, b_sq = _load_queries(
                q, do, lse, delta, start, i_b, q0, i_h, T, H, D, HAS_SEQ, BM, BD, DOT
            )
            b_s = _scores(b_q, b_k, o_q, o_k, b_sq, b_sk, T, W, S, qk_scale, HAS_SEQ, IEEE)
            b_p, b_ds = _probs_grads(b_s, b_lse, b_delta, b_do, b_v, IEEE)  # [BM, BN]
            b_dv += dot(tl.trans(b_p.to(b_do.dtype)), b_do, IEEE)  # [BN, BD]
            b_dk += dot(tl.trans(b_ds.to(b_q.dtype)), b_q, IEEE)  # [BN, BD]
    p_kv, m_kv = _rows(i_b, k0, i_hk, T, HKV, D, BD, BN)
    tl.store(dk + p_kv, (b_dk * sm_scale).to(dk.dtype.element_ty), mask=m_kv)
    tl.store(dv + p_kv, b_dv.to(dv.dtype.element_ty), mask=m_kv)
