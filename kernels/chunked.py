"""Shared plumbing of the chunked linear-recurrence references (GLA, delta rules, RWKV-7).

These ops keep a matrix state per head in the flash-linear-attention orientation, S [K, V]
(read out as o_t = q_t S_t with q a row vector), take inputs as [B, T, H, *], compute in float32
at least (float64 stays float64), and treat a step with zero log-decay and zero write as an
identity step: right padding marked by `lengths` and the padding up to a whole chunk become
such steps, so the final state is each row's state after its last real position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def real_positions(lengths: torch.Tensor | None, batch: int, seqlen: int, device) -> torch.Tensor | None:
    """[B, T] bool, true on each row's first lengths[b] positions; None without lengths."""
    if lengths is None:
        return None
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be [B] = ({batch},), got {tuple(lengths.shape)}")
    return torch.arange(seqlen, device=device) < lengths.to(device)[:, None]


def zero_padding(real: torch.Tensor | None, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each [B, T, ...] tensor with the positions where `real` [B, T] is false set to 0."""
    if real is None:
        return list(tensors)
    return [t * real.view(*real.shape, *([1] * (t.dim() - 2))).to(t.dtype) for t in tensors]


def to_chunks(t: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, T, H, *] -> [B, H, C, L, *] in `dtype`, the time axis zero-padded to C * L."""
    t = t.to(dtype)
    bsz, seqlen = t.shape[:2]
    pad = (-seqlen) % chunk
    t = F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
    t = t.reshape(bsz, (seqlen + pad) // chunk, chunk, *t.shape[2:])  # [B, C, L, H, *]
    return t.transpose(2, 3).transpose(1, 2)  # [B, H, C, L, *]


def from_chunks(t: torch.Tensor, seqlen: int) -> torch.Tensor:
    """[B, H, C, L, *] -> [B, T, H, *], the padding dropped."""
    bsz, heads, nchunks, chunk = t.shape[:4]
    t = t.transpose(1, 2).transpose(2, 3)  # [B, C, L, H, *]
    return t.reshape(bsz, nchunks * chunk, heads, *t.shape[4:])[:, :seqlen]


def causal_mask(length: int, device, strict: bool = False) -> torch.Tensor:
    """[L, L] bool, true where j <= i (j < i when strict)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril(-1 if strict else 0)


def pair_decay(c_row: torch.Tensor, c_col: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """exp(c_row[i] - c_col[j]) over pairs (i, j) that `mask` [L, L] keeps, 0 elsewhere.

    c_row [..., L, K] and c_col [..., L, K] are cumulative log-decays within one chunk, and the
    kept pairs have c_row[i] <= c_col[j], so every exponent is <= 0: nothing overflows however
    strong the decay. Masked entries are filled before exp, so their gradient is exactly 0.
    Returns [..., L(i), L(j), K].
    """
    diff = c_row[..., :, None, :] - c_col[..., None, :, :]  # [..., L, L, K]
    return torch.exp(diff.masked_fill(~mask[:, :, None], float("-inf")))
