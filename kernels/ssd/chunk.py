"""The SSD chunked scan in Triton, forward and backward. `naive.py` is the specification.

Per chunk of BT positions (one program per chunk, batch row and head; BT is chunk_size
rounded up to a power of two in [16, 64]), with a_t = dt_t A and acs the cumulative sum of a
inside the chunk:

  forward
    1. chunk states   S_c = sum_s exp(acs_last - acs_s) dt_s x_s B_s^T          [P, N]
    2. state passing  H_{c+1} = g_c H_c + S_c, g_c = exp(acs_last), H_0 = initial state
    3. output         y = ((C B^T) * E) (dt x) + exp(acs) * (C H_c^T) + D x   with
                      E_ls = exp(acs_l - acs_s) for s <= l, else 0
  backward
    1-2. the same two kernels give H_c again (recomputed, not stored) and, run on (dy, C) with
         weights exp(acs) and the passing loop reversed, dH_{c+1} = dS_c for every chunk and
         dH_0 = the initial state's gradient;
    3. one kernel per chunk gives dx, ddt, dB, dC and per-chunk partial sums for dA and dD.
       The decay gradients are gathered per position as d(acs) and turned into d(a) by a
       reverse cumulative sum, so nothing loops over time inside a chunk.

Sequence ids enter as running segment numbers `seg` [B, T]: a pair of positions interacts
only within one segment, a chunk's state counts only its last segment, a carried state enters
a chunk only for positions of the segment it belongs to, and g_c is zero when a segment
starts inside chunk c (the carried state then belongs to a finished segment).

All accumulation is fp32. fp32 inputs multiply in full precision (`input_precision="ieee"`);
bf16/fp16 inputs feed their own dtype to the tensor cores. float64 inputs compute in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton

from bytelm.kernels.ssd.chunk_kernels import (
    chunk_bwd_kernel,
    chunk_output_kernel,
    chunk_states_kernel,
    state_passing_kernel,
)
from bytelm.kernels.ssd.naive import check_inputs, segment_ids
from bytelm.kernels.triton_utils import (
    block,
    check_device,
    dot_flags,
    loop_block,
    new_buffer,
)


class _Plan:
    """Shapes, block sizes and flags shared by the forward and backward launches."""

    def __init__(self, x: torch.Tensor, B: torch.Tensor, block_t: int, seg: torch.Tensor | None):
        self.b, self.t, self.h, self.p = x.shape
        self.g, self.n = B.shape[2], B.shape[3]
        self.bt = block_t
        self.nc = triton.cdiv(self.t, block_t)
        # State channels go through the kernels in blocks of BN, a loop_block at most.
        self.bp, self.bn = block(self.p), min(block(self.n), loop_block())
        self.has_seq = seg is not None
        self.dot_flags = dot_flags(x.dtype)
        self.device = x.device

    def launch(self, kernel, *tensors, **flags) -> None:
        """Run a per-chunk kernel on the grid (chunks, B * H): tensors, then T and NC, then the
        shared compile-time settings and the kernel's own `flags`."""
        kernel[(self.nc, self.b * self.h)](
            *tensors,
            self.t,
            self.nc,
            H=self.h,
            G=self.g,
            P=self.p,
            N=self.n,
            HAS_SEQ=self.has_seq,
            BT=self.bt,
            BP=self.bp,
            BN=self.bn,
            **self.dot_flags,
            **flags,
        )


def _gates(
    dt: torch.Tensor, A: torch.Tensor, seg: torch.Tensor | None, plan: _Plan
) -> torch.Tensor:
    """g [B, NC, H] fp32: exp(total chunk decay), 0 where a new segment starts inside the chunk."""
    pad = plan.nc * plan.bt - plan.t
    a = F.pad(dt.float() * A.float(), (0, 0, 0, pad))  # [B, Tp, H]
    gate = torch.exp(a.reshape(plan.b, plan.nc, plan.bt, plan.h).sum(dim=2))  # [B, NC, H]
    if seg is not None:
        seg_p = F.pad(seg, (0, pad), mode="replicate").reshape(plan.b, plan.nc, plan.bt)
        seg_last = seg_p[:, :, -1]  # [B, NC]
        seg_edge = F.pad(seg_last, (1, 0))[:, :-1]  # [B, NC]
        gate = gate * (seg_edge == seg_last)[..., None]
    return gate.contiguous()


def _states(x, dt, A, Bm, seg, plan: _Plan, from_start: bool) -> torch.Tensor:
    """Per-chunk sums of w x B^T, [B, NC, H, P, N] fp32."""
    out = new_buffer((plan.b, plan.nc, plan.h, plan.p, plan.n), torch.float32, plan.device)
    plan.launch(chunk_states_kernel, x, dt, A, Bm, seg, out, FROM_START=from_start)
    return out


def _passing(S, gate, init, plan: _Plan, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Run h <- g h + S over the chunks: (h before each chunk's update, h at the end)."""
    pn = plan.p * plan.n
    out = new_buffer(S.shape, torch.float32, plan.device)
    final = new_buffer((plan.b, plan.h, plan.p, plan.n), torch.float32, plan.device)
    blk = min(1024, block(pn))
    state_passing_kernel[(triton.cdiv(pn, blk), plan.b * plan.h)](
        S,
        gate,
        init,
        out,
        final,
        plan.nc,
        H=plan.h,
        PN=pn,
        HAS_INIT=init is not None,
        REVERSE=reverse,
        BLOCK=blk,
    )
    return out, final


class _ChunkScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, Bm, Cm, D, initial_state, seg, block_t):
        plan = _Plan(x, Bm, block_t, seg)
        S = _states(x, dt, A, Bm, seg, plan, from_start=False)
        gate = _gates(dt, A, seg, plan)
        Hin, final = _passing(S, gate, initial_state, plan, reverse=False)
        y = new_buffer(x.shape, x.dtype, x.device)
        inputs = (x, dt, A, Bm, Cm, seg)
        plan.launch(chunk_output_kernel, *inputs, Hin, D, y, HAS_D=D is not None)
        ctx.save_for_backward(x, dt, A, Bm, Cm, D, initial_state, seg)
        ctx.block_t = block_t
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        x, dt, A, Bm, Cm, D, initial_state, seg = ctx.saved_tensors
        plan = _Plan(x, Bm, ctx.block_t, seg)
        dy = dy.contiguous()
        gate = _gates(dt, A, seg, plan)
        Hin, _ = _passing(_states(x, dt, A, Bm, seg, plan, False), gate, initial_state, plan, False)
        dloc = _states(dy, dt, A, Cm, seg, plan, from_start=True)
        dS, dh0 = _passing(dloc, gate, dfinal.float().contiguous(), plan, reverse=True)

        shape_n = (plan.b, plan.t, plan.h, plan.n)
        dx = new_buffer(x.shape, x.dtype, x.device)
        ddt = new_buffer(dt.shape, torch.float32, x.device)
        dB = new_buffer(shape_n, torch.float32, x.device)
        dC = new_buffer(shape_n, torch.float32, x.device)
        dA = new_buffer((plan.b, plan.nc, plan.h), torch.float32, x.device)
        dD = (
            new_buffer((plan.b, plan.nc, plan.h), torch.float32, x.device)
            if D is not None
            else None
        )
        grads = (dx, ddt, dB, dC, dA, dD)
        inputs = (x, dt, A, Bm, Cm, seg)
        plan.launch(chunk_bwd_kernel, *inputs, Hin, dS, gate, D, dy, *grads, HAS_D=D is not None)
        rep = plan.h // plan.g
        dB = dB.view(plan.b, plan.t, plan.g, rep, plan.n).sum(dim=3).to(Bm.dtype)
        dC = dC.view(plan.b, plan.t, plan.g, rep, plan.n).sum(dim=3).to(Cm.dtype)
        dA = dA.sum(dim=(0, 1)).to(A.dtype)
        dD = dD.sum(dim=(0, 1)).to(D.dtype) if D is not None else None
        dh0 = dh0.to(initial_state.dtype) if initial_state is not None else None
        return dx, ddt.to(dt.dtype), dA, dB, dC, dD, dh0, None, None


def chunk_scan_triton(
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
    """Triton `chunk_scan`; arguments and shapes as in `bytelm.kernels.ssd.chunk_scan`.

    The chunked algorithm is exact for any chunk length, so chunk_size only picks the kernels'
    block along time: the nearest power of two at or above it, kept within [16, 64] (tl.dot
    needs 16 or more; above 64 the backward kernel spills registers and, at 256, outgrows
    shared memory on sm_90). y has x's dtype; the final state is fp32.
    """
    check_inputs(x, dt, A, B, C, chunk_size, D, initial_state, seq_idx)
    check_device(x)
    block_t = min(64, block(chunk_size))
    if x.dtype == torch.float64:
        args = [t.float() if t is not None else None for t in (x, dt, A, B, C, D, initial_state)]
        y, final = chunk_scan_triton(*args[:5], chunk_size, *args[5:], seq_idx, True)
        y = y.to(torch.float64)
        return (y, final.double()) if return_final_state else y
    seg = segment_ids(seq_idx).to(torch.int32).contiguous() if seq_idx is not None else None
    y, final = _ChunkScan.apply(
        x.contiguous(),
        dt.contiguous(),
        A.contiguous(),
        B.contiguous(),
        C.contiguous(),
        D.contiguous() if D is not None else None,
        initial_state.contiguous() if initial_state is not None else None,
        seg,
        block_t,
    )
    return (y, final) if return_final_state else y
