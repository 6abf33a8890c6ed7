"""Shared inputs of the recurrent families: for RetNet and linear attention on the SSD scan, a
fixed step of `dt` on real positions and 0 (an identity step: no decay, no input) on the right
padding that `lengths` marks; positions after a pass; the chunk length of the LTI mixers."""

from __future__ import annotations

import torch

# Chunk length cap of the LTI mixers (S4D, Mega's EMA; `bytelm.layers.lti`): the Toeplitz work
# per position grows with the chunk, the dense state passing with (T / chunk)^2; measured with
# `bytelm bench mixers`, this cap is fastest at the benchmark's shapes.
NARROW_CHUNK = 64


def fixed_steps(
    step: torch.Tensor, batch: int, seqlen: int, lengths: torch.Tensor | None
) -> torch.Tensor:
    """dt [B, T, H]: `step` [H] on each row's first lengths[b] positions, 0 after them."""
    dt = step.expand(batch, seqlen, step.shape[-1])  # [B, T, H]
    if lengths is None:
        return dt
    real = torch.arange(seqlen, device=step.device) < lengths[:, None]  # [B, T]
    return dt * real[..., None].to(step.dtype)


def advanced(pos: torch.Tensor, seqlen: int, lengths: torch.Tensor | None) -> torch.Tensor:
    """Positions [B] after a pass of `seqlen` positions (only the real ones count)."""
    return pos + (seqlen if lengths is None else lengths)
