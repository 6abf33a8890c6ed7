"""The Triton kernels of the SSD chunked scan; `chunk.py` plans and launches them and holds
the algorithm's description.
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
def _chunk_program(NC, H: tl.constexpr, G: tl.constexpr):
    """(batch row, chunk, head, B/C group, flat index into [B, NC, H]) of a program of the grid
    (chunks, B * H)."""
    i_c, i_bh = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    return i_b, i_c, i_h, i_h // (H // G), (i_b * NC + i_c) * H + i_h


@triton.jit
def _state_block(i_bch, i_n, P: tl.constexpr, N: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr):
    """Offsets and mask of the [BP, BN] block i_n (along N) of the [P, N] state i_bch (flat
    batch, chunk, head index) in a [B, NC, H, P, N] tensor, and the block's channels o_n [BN]."""
    o_p, o_n = tl.arange(0, BP), i_n * BN + tl.arange(0, BN)
    p = i_bch * (P * N) + (o_p[:, None] * N + o_n[None, :])
    return p, (o_p < P)[:, None] & (o_n < N)[None, :], o_n


@triton.jit
def _load_chunk(ptr, t0, i_k, NK: tl.constexpr, K: tl.constexpr, o_l, m_t, o_k):
    """[BT, BK] block of a [B, T, NK, K] tensor: the chunk's rows t0 + o_l of head i_k,
    columns o_k, zero outside."""
    p = row_offsets(t0, i_k, NK, K, o_l, o_k)
    return tl.load(ptr + p, mask=m_t[:, None] & (o_k < K)[None, :], other=0.0)


@triton.jit
def _store_chunk(ptr, b_x, t0, i_k, NK: tl.constexpr, K: tl.constexpr, o_l, m_t, o_k):
    """Store b_x [BT, BK] where `_load_chunk` with the same arguments reads, in ptr's dtype."""
    p = row_offsets(t0, i_k, NK, K, o_l, o_k)
    tl.store(ptr + p, b_x.to(ptr.dtype.element_ty), mask=m_t[:, None] & (o_k < K)[None, :])


@triton.jit
def _chunk_decay(
    dt, A, seg, i_b, i_c, i_h, T, H: tl.constexpr, BT: tl.constexpr, HAS_SEQ: tl.constexpr
):
    """Per-position quantities of one chunk: positions, validity, dt, a, acs, segment masks."""
    t0 = i_b * T + i_c * BT  # int64 flat row of the chunk's first position
    o_l = tl.arange(0, BT)  # [BT] offsets inside the chunk (int32; large offsets stay scalar)
    m_t = i_c * BT + o_l < T
    b_dt = tl.load(dt + t0 * H + i_h + o_l * H, mask=m_t, other=0.0).to(tl.float32)  # [BT]
    b_a = b_dt * tl.load(A + i_h).to(tl.float32)  # [BT]
    b_acs = tl.cumsum(b_a, axis=0)  # [BT]
    if HAS_SEQ:
        b_seg = tl.load(seg + t0 + o_l, mask=m_t, other=-1)  # [BT]
        seg_last = tl.load(seg + i_b * T + tl.minimum(i_c * BT + BT - 1, T - 1))
        seg_edge = tl.load(seg + i_b * T + tl.maximum(i_c * BT - 1, 0))
    else:
        b_seg = tl.zeros([BT], dtype=tl.int32)
        seg_last = 0
        seg_edge = 0
    return t0, o_l, m_t, b_dt, b_a, b_acs, b_seg, b_seg == seg_last, b_seg == seg_edge


@triton.jit
def _intra_decay(b_acs, b_seg, BT: tl.constexpr):
    """E [BT, BT]: exp(acs_l - acs_s) where s <= l in the same segment, else 0."""
    o_i = tl.arange(0, BT)
    m_ls = (o_i[:, None] >= o_i[None, :]) & (b_seg[:, None] == b_seg[None, :])
    return tl.exp(tl.where(m_ls, b_acs[:, None] - b_acs[None, :], float("-inf")))


@triton.autotune(configs=launch_configs(loops=False), key=["H", "G", "P", "N", "BT", "DOT"])
@triton.jit
def chunk_states_kernel(
    x,
    dt,
    A,
    Bm,
    seg,
    out,
    T,
    NC,
    H: tl.constexpr,
    G: tl.constexpr,
    P: tl.constexpr,
    N: tl.constexpr,
    FROM_START: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    BT: tl.constexpr,
    BP: tl.constexpr,
    BN: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    """out[b, c, h] = sum_s w_s x_s B_s^T over chunk c, [P, N], one [BP, BN] block at a time.

    FROM_START=False (chunk states): w = dt * exp(acs_last - acs) on the chunk's last segment.
    FROM_START=True (backward, x = dy, B = C): w = exp(acs) on the segment entering the chunk.
    """
    i_b, i_c, i_h, i_g, i_bch = _chunk_program(NC, H, G)
    t0, o_l, m_t, b_dt, b_a, b_acs, b_seg, m_last, m_edge = _chunk_decay(
        dt, A, seg, i_b, i_c, i_h, T, H, BT, HAS_SEQ
    )
    o_p = tl.arange(0, BP)
    b_x = _load_chunk(x, t0, i_h, H, P, o_l, m_t, o_p).to(tl.float32)  # [BT, BP]
    if FROM_START:
        b_w = tl.where(m_edge, tl.exp(b_acs), 0.0)  # [BT]
    else:
        b_w = tl.where(m_last, tl.exp(tl.sum(b_a, axis=0) - b_acs) * b_dt, 0.0)  # [BT]
    b_xw = tl.trans((b_x * b_w[:, None]).to(DOT))  # [BP, BT]
    for i_n in range(0, tl.cdiv(N, BN)):
        p_pn, m_pn, o_n = _state_block(i_bch, i_n, P, N, BP, BN)
        b_B = _load_chunk(Bm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        tl.store(out + p_pn, dot(b_xw, b_B, IEEE), mask=m_pn)  # [BP, BN]


@triton.jit
def state_passing_kernel(
    S,
    gate,
    init,
    out,
    final,
    NC,
    H: tl.constexpr,
    PN: tl.constexpr,
    HAS_INIT: tl.constexpr,
    REVERSE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """h <- g_c h + S_c over the chunks, storing h before each update in out[b, c, h].

    Forward: h starts at the initial state, out[c] = H_c, final = H_NC. Reverse (chunks in
    descending order, S = the per-chunk dy C^T sums): out[c] = dH_{c+1}, final = dH_0.
    """
    i_blk, i_bh = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    o = i_blk * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    m = o < PN
    if HAS_INIT:
        b_h = tl.load(init + i_bh * PN + o, mask=m, other=0.0).to(tl.float32)  # [BLOCK]
    else:
        b_h = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(0, NC):
        if REVERSE:
            i_c = NC - 1 - i
        else:
            i_c = i
        i_bch = (i_b * NC + i_c) * H + i_h
        tl.store(out + i_bch * PN + o, b_h, mask=m)
        b_g = tl.load(gate + i_bch)
        b_h = b_g * b_h + tl.load(S + i_bch * PN + o, mask=m, other=0.0)
    tl.store(final + i_bh * PN + o, b_h, mask=m)


@triton.autotune(configs=launch_configs(loops=False), key=["H", "G", "P", "N", "BT", "DOT"])
@triton.jit
def chunk_output_kernel(
    x,
    dt,
    A,
    Bm,
    Cm,
    seg,
    Hin,
    D,
    y,
    T,
    NC,
    H: tl.constexpr,
    G: tl.constexpr,
    P: tl.constexpr,
    N: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    HAS_D: tl.constexpr,
    BT: tl.constexpr,
    BP: tl.constexpr,
    BN: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    """y of one chunk: intra-chunk part + the entering state's part + D skip, [BT, P].

    C B^T and C H_c^T are accumulated over blocks of BN state channels.
    """
    i_b, i_c, i_h, i_g, i_bch = _chunk_program(NC, H, G)
    t0, o_l, m_t, b_dt, b_a, b_acs, b_seg, m_last, m_edge = _chunk_decay(
        dt, A, seg, i_b, i_c, i_h, T, H, BT, HAS_SEQ
    )
    o_p = tl.arange(0, BP)
    b_x = _load_chunk(x, t0, i_h, H, P, o_l, m_t, o_p).to(tl.float32)  # [BT, BP]

    b_CB = tl.zeros([BT, BT], dtype=tl.float32)
    b_CH = tl.zeros([BT, BP], dtype=tl.float32)
    for i_n in range(0, tl.cdiv(N, BN)):
        p_pn, m_pn, o_n = _state_block(i_bch, i_n, P, N, BP, BN)
        b_B = _load_chunk(Bm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_C = _load_chunk(Cm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_H = tl.load(Hin + p_pn, mask=m_pn, other=0.0)  # [BP, BN]
        b_CB += dot(b_C, tl.trans(b_B), IEEE)  # [BT, BT]
        b_CH += dot(b_C, tl.trans(b_H.to(DOT)), IEEE)  # [BT, BP]

    b_W = b_CB * _intra_decay(b_acs, b_seg, BT)  # [BT, BT]
    b_xdt = (b_x * b_dt[:, None]).to(DOT)  # [BT, BP]
    b_y = dot(b_W.to(DOT), b_xdt, IEEE)  # [BT, BP]
    b_y += b_CH * tl.where(m_edge, tl.exp(b_acs), 0.0)[:, None]
    if HAS_D:
        b_y += b_x * tl.load(D + i_h).to(tl.float32)
    _store_chunk(y, b_y, t0, i_h, H, P, o_l, m_t, o_p)


@triton.autotune(configs=launch_configs(loops=False), key=["H", "G", "P", "N", "BT", "DOT"])
@triton.jit
def chunk_bwd_kernel(
    x,
    dt,
    A,
    Bm,
    Cm,
    seg,
    Hin,
    dS,
    gate,
    D,
    dy,
    dx,
    ddt,
    dB,
    dC,
    dA,
    dD,
    T,
    NC,
    H: tl.constexpr,
    G: tl.constexpr,
    P: tl.constexpr,
    N: tl.constexpr,
    HAS_SEQ: tl.constexpr,
    HAS_D: tl.constexpr,
    BT: tl.constexpr,
    BP: tl.constexpr,
    BN: tl.constexpr,
    DOT: tl.constexpr,
    IEEE: tl.constexpr,
):
    """Gradients of one chunk given dy, its entering state H_c and dS_c = dH_{c+1}.

    dx, ddt [B, T, H]; dB, dC per head [B, T, H, N] (summed over a group's heads outside);
    dA, dD per chunk [B, NC, H] (summed outside). Two passes over blocks of BN state channels:
    the first accumulates the products that contract N, the second writes dB and dC.
    """
    i_b, i_c, i_h, i_g, i_bch = _chunk_program(NC, H, G)
    t0, o_l, m_t, b_dt, b_a, b_acs, b_seg, m_last, m_edge = _chunk_decay(
        dt, A, seg, i_b, i_c, i_h, T, H, BT, HAS_SEQ
    )
    o_p = tl.arange(0, BP)
    b_x = _load_chunk(x, t0, i_h, H, P, o_l, m_t, o_p).to(tl.float32)  # [BT, BP]
    b_dy = _load_chunk(dy, t0, i_h, H, P, o_l, m_t, o_p).to(tl.float32)  # [BT, BP]
    b_xdt = b_x * b_dt[:, None]  # [BT, BP]

    # Pass 1 over N: C B^T, C H^T, B dS^T and sum(dS * H).
    b_CB = tl.zeros([BT, BT], dtype=tl.float32)
    b_CH = tl.zeros([BT, BP], dtype=tl.float32)
    b_BdS = tl.zeros([BT, BP], dtype=tl.float32)
    b_HdS = tl.zeros([BP], dtype=tl.float32)
    for i_n in range(0, tl.cdiv(N, BN)):
        p_pn, m_pn, o_n = _state_block(i_bch, i_n, P, N, BP, BN)
        b_B = _load_chunk(Bm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_C = _load_chunk(Cm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_H = tl.load(Hin + p_pn, mask=m_pn, other=0.0)  # [BP, BN]
        b_dS = tl.load(dS + p_pn, mask=m_pn, other=0.0)  # [BP, BN]
        b_CB += dot(b_C, tl.trans(b_B), IEEE)  # [BT, BT]
        b_CH += dot(b_C, tl.trans(b_H.to(DOT)), IEEE)  # [BT, BP]
        b_BdS += dot(b_B, tl.trans(b_dS.to(DOT)), IEEE)  # [BT, BP]
        b_HdS += tl.sum(b_dS * b_H, axis=1)  # [BP]

    b_E = _intra_decay(b_acs, b_seg, BT)  # [BT, BT]
    b_W = b_CB * b_E  # [BT, BT]
    b_dW = dot(b_dy.to(DOT), tl.trans(b_xdt.to(DOT)), IEEE)  # [BT, BT]
    b_win = tl.where(m_edge, tl.exp(b_acs), 0.0)  # [BT]
    b_wend = tl.where(m_last, tl.exp(tl.sum(b_a, axis=0) - b_acs), 0.0)  # [BT]

    # d(acs) per position: intra pairs (l gains, s loses), entering state, chunk state, gate.
    b_Gm = b_dW * b_W  # [BT, BT]
    b_dacs = tl.sum(b_Gm, axis=1) - tl.sum(b_Gm, axis=0)  # [BT]
    b_dacs += tl.sum(b_dy * b_CH, axis=1) * b_win
    b_u = b_wend * tl.sum(b_xdt * b_BdS, axis=1)  # [BT]
    b_dacs -= b_u
    b_g = tl.load(gate + i_bch)
    b_dlast = tl.sum(b_u, axis=0) + b_g * tl.sum(b_HdS, axis=0)
    b_dacs += tl.where(tl.arange(0, BT) == BT - 1, b_dlast, 0.0)
    b_da = tl.sum(b_dacs, axis=0) - tl.cumsum(b_dacs, axis=0) + b_dacs  # [BT] reverse cumsum

    b_dxdt = dot(tl.trans(b_W.to(DOT)), b_dy.to(DOT), IEEE) + b_wend[:, None] * b_BdS  # [BT, BP]
    b_dx = b_dxdt * b_dt[:, None]
    if HAS_D:
        b_dx += tl.load(D + i_h).to(tl.float32) * b_dy
        tl.store(dD + i_bch, tl.sum(tl.sum(b_dy * b_x, axis=1), axis=0))
    _store_chunk(dx, b_dx, t0, i_h, H, P, o_l, m_t, o_p)
    b_ddt = b_da * tl.load(A + i_h).to(tl.float32) + tl.sum(b_dxdt * b_x, axis=1)  # [BT]
    tl.store(ddt + t0 * H + i_h + o_l * H, b_ddt, mask=m_t)
    tl.store(dA + i_bch, tl.sum(b_da * b_dt, axis=0))

    # Pass 2 over N: dC = dCB B + win * dy H, dB = dCB^T C + wend * xdt dS.
    b_dCB = (b_dW * b_E).to(DOT)  # [BT, BT]
    b_dyw = (b_dy * b_win[:, None]).to(DOT)  # [BT, BP]
    b_xdtw = (b_xdt * b_wend[:, None]).to(DOT)  # [BT, BP]
    for i_n in range(0, tl.cdiv(N, BN)):
        p_pn, m_pn, o_n = _state_block(i_bch, i_n, P, N, BP, BN)
        b_B = _load_chunk(Bm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_C = _load_chunk(Cm, t0, i_g, G, N, o_l, m_t, o_n).to(DOT)  # [BT, BN]
        b_H = tl.load(Hin + p_pn, mask=m_pn, other=0.0).to(DOT)  # [BP, BN]
        b_dS = tl.load(dS + p_pn, mask=m_pn, other=0.0).to(DOT)  # [BP, BN]
        b_dC = dot(b_dCB, b_B, IEEE) + dot(b_dyw, b_H, IEEE)  # [BT, BN]
        b_dB = dot(tl.trans(b_dCB), b_C, IEEE) + dot(b_xdtw, b_dS, IEEE)  # [BT, BN]
        _store_chunk(dC, b_dC, t0, i_h, H, N, o_l, m_t, o_n)
        _store_chunk(dB, b_dB, t0, i_h, H, N, o_l, m_t, o_n)
