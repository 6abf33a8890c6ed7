"""Shared inputs of the mixers that run on the SSD scan with a fixed step (RetNet, linear
attention, S4D, Mega): a step of `dt` on real positions and 0 (an identity step: no decay, no
input) on the right padding that `lengths` marks."""

from __future__ import annotations

import torch

# Scan chunk length of the mixers with many narrow heads (S4D and Mega: [P, 1] states): the
# intra-chunk work per position grows with the chunk while passing such small states between
# chunks costs next to nothing, so they scan in chunks of at most this many positions.
NARROW_CHUNK = 16


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
