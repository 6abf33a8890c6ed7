"""The SSD reference's intra-chunk term as one autograd function with a hand-written backward.

Inside a chunk, y_i = sum_{j <= i} exp(a_i - a_j) (C_i . B_j) (dt_j x_j) per head: a masked decay
matrix [L, L] per head times the group's C B^T, then a product with the inputs. Written as
composed ops, autograd records about ten full [B, C, G, R, L, L] passes, and the gradients reach
`bmm` in permuted layouts that the CPU kernel can only loop over matrix by matrix. This function
keeps the decay matrix, recomputes the scores in the backward pass, and hands `bmm` contiguous
operands: four full passes forward, five backward. `intra_chunk_reference` is the same term as
plain composed ops; the tests compare the two, output and every gradient.
"""

from __future__ import annotations

import torch


def intra_chunk_reference(
    cb: torch.Tensor, a_cs: torch.Tensor, xdt: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """y [B, C, G, R, L, P] from cb [B, C, G, L, S], a_cs [B, C, G, R, L], xdt [B, C, G, R, L, P].

    a_cs is the cumulative log-decay within each chunk; `keep` (broadcastable to
    [B, C, G, R, L, S], bool) marks the pairs (i, j) that interact: the causal ones, and when
    rows hold several segments, those of the same segment. Masked pairs are filled before exp,
    so their gradient is exactly 0.
    """
    diff = a_cs[..., :, None] - a_cs[..., None, :]  # [B, C, G, R, L, S]
    decay = torch.exp(diff.masked_fill(~keep, float("-inf")))
    return (cb[:, :, :, None] * decay) @ xdt


class _IntraChunk(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cb, a_cs, xdt, keep):
        diff = a_cs[..., :, None] - a_cs[..., None, :]  # [B, C, G, R, L, S]
        decay = diff.masked_fill_(~keep, float("-inf")).exp_()
        scores = decay * cb[:, :, :, None]
        xdt = xdt.contiguous()
        ctx.save_for_backward(cb, decay, xdt)
        return scores @ xdt  # [B, C, G, R, L, P]

    @staticmethod
    def backward(ctx, dy):
        cb, decay, xdt = ctx.saved_tensors
        dy = dy.contiguous()  # [B, C, G, R, L, P]
        scores = decay * cb[:, :, :, None]  # [B, C, G, R, L, S]
        dxdt = scores.transpose(-1, -2) @ dy  # [B, C, G, R, S, P]
        dscores = dy @ xdt.transpose(-1, -2)  # [B, C, G, R, L, S]
        dcb = (dscores * decay).sum(dim=3)  # [B, C, G, L, S]
        ddiff = dscores.mul_(scores)  # d scores / d diff = scores; 0 where masked
        da = ddiff.sum(dim=-1) - ddiff.sum(dim=-2)  # [B, C, G, R, L]
        return dcb, da, dxdt, None


def intra_chunk(cb: torch.Tensor, a_cs: torch.Tensor, xdt: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`intra_chunk_reference` with the hand-written backward; same shapes and meaning."""
    return _IntraChunk.apply(cb, a_cs, xdt, keep)
