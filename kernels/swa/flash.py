"""Sliding-window causal attention with sinks in Triton, forward and backward.

FlashAttention-2 structure with an online softmax, restricted to the keys a query block can
see, so the cost is O(T * (window + sinks)):

  forward   one program per (query block of BM, batch row, head) walks, in one loop, two key
            ranges: the sink keys that lie before its window (the first `sinks` positions of
            the first query's segment) and the window itself, max(0, q_lo - window + 1) ..
            q_hi. The two ranges are disjoint and block-aligned, so no key is counted twice.
            It stores the output and the row log-sum-exp (base 2).
  backward  delta = rowsum(dO * O) in PyTorch; one kernel per query block recomputes the
            probabilities over the same key ranges and accumulates dQ; one kernel per
            (key block of BN, batch row, KV head) walks the queries that can see it (its window
            reach, and for blocks holding sinks the rest of their segment) for every query head
            of its group, and accumulates dK and dV without atomics. Its grid runs heads
            fastest, so the long-running sink blocks all start in the first wave.

One mask function decides every (query, key) pair in all three kernels, so they agree with
each other and with `naive.py` by construction: key <= query, same segment, and either
query - key < window or key - segment start < sinks.
"""

from __future__ import annotations

import math

import torch
import triton

from bytelm.kernels.swa.flash_kernels import (
    swa_bwd_dkv_kernel,
    swa_bwd_dq_kernel,
    swa_fwd_kernel,
)
from bytelm.kernels.swa.naive import check_inputs, segment_starts
from bytelm.kernels.triton_utils import (
    block,
    check_device,
    dot_flags,
    loop_block,
    new_buffer,
)

LOG2E = 1.4426950408889634


def _flags(q: torch.Tensor, nkv: int, has_seq: bool) -> dict:
    """Compile-time settings of the three kernels: blocks of `loop_block()` queries and keys."""
    bsz, seqlen, nheads, dim = q.shape
    bm = loop_block()
    return dict(
        H=nheads,
        HKV=nkv,
        D=dim,
        HAS_SEQ=has_seq,
        BM=bm,
        BN=bm,
        BD=block(dim),
        **dot_flags(q.dtype),
    )


def _segments(seq_idx: torch.Tensor | None, bsz: int, seqlen: int, device) -> tuple:
    """(start, end) [B, T] int32: each position's segment start and (exclusive) end."""
    if seq_idx is None:
        return None, None
    start = segment_starts(seq_idx, bsz, seqlen, device)  # [B, T]
    pos = torch.arange(seqlen, device=device).expand(bsz, seqlen)
    last = torch.ones(bsz, seqlen, dtype=torch.bool, device=device)
    last[:, :-1] = start[:, 1:] != start[:, :-1]
    end = torch.where(last, pos + 1, torch.full_like(pos, seqlen))
    end = end.flip(1).cummin(dim=1).values.flip(1)
    return start.to(torch.int32).contiguous(), end.to(torch.int32).contiguous()


class _SlidingWindowAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, window, sinks, start, end):
        bsz, seqlen, nheads, dim = q.shape
        nkv = k.shape[2]
        flags = _flags(q, nkv, start is not None)
        sm_scale = 1.0 / math.sqrt(dim)
        o = new_buffer(q.shape, q.dtype, q.device)
        lse = new_buffer((bsz, seqlen, nheads), torch.float32, q.device)
        swa_fwd_kernel[(triton.cdiv(seqlen, flags["BM"]), bsz * nheads)](
            q, k, v, start, o, lse, seqlen, window, sinks, sm_scale * LOG2E, **flags
        )
        ctx.save_for_backward(q, k, v, o, lse, start, end)
        ctx.window, ctx.sinks = window, sinks
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, start, end = ctx.saved_tensors
        bsz, seqlen, nheads, dim = q.shape
        nkv = k.shape[2]
        flags = _flags(q, nkv, start is not None)
        sm_scale = 1.0 / math.sqrt(dim)
        do = do.contiguous()
        delta = (do.float() * o.float()).sum(dim=-1).contiguous()  # [B, T, H]
        dq = new_buffer(q.shape, q.dtype, q.device)
        dk = new_buffer(k.shape, k.dtype, k.device)
        dv = new_buffer(v.shape, v.dtype, v.device)
        scalars = (seqlen, ctx.window, ctx.sinks, sm_scale * LOG2E, sm_scale)
        swa_bwd_dq_kernel[(triton.cdiv(seqlen, flags["BM"]), bsz * nheads)](
            q, k, v, start, do, lse, delta, dq, *scalars, **flags
        )
        swa_bwd_dkv_kernel[(bsz * nkv, triton.cdiv(seqlen, flags["BN"]))](
            q, k, v, start, end, do, lse, delta, dk, dv, *scalars, **flags
        )
        return dq, dk, dv, None, None, None, None


def sliding_window_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    sinks: int = 0,
    seq_idx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triton `sliding_window_attention`; arguments and shapes as in `bytelm.kernels.swa`.

    fp32, bf16 and fp16 inputs (fp32 accumulation); float64 inputs compute in fp32.
    """
    check_inputs(q, k, v, window, sinks, seq_idx)
    check_device(q)
    if q.dtype == torch.float64:
        out = sliding_window_attention_triton(
            q.float(), k.float(), v.float(), window, sinks, seq_idx
        )
        return out.double()
    start, end = _segments(seq_idx, q.shape[0], q.shape[1], q.device)
    return _SlidingWindowAttention.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), window, sinks, start, end
    )
