"""Gated linear attention with a per-key-channel gate (GLA).

`chunk_gla` is the public op; `naive.py` is its specification in pure PyTorch. On CUDA with
flash-linear-attention installed, `bytelm.kernels.dispatch.use_fla` sends it to fla's
`chunk_gla` Triton kernels (same [B, T, H, *] layout, same [B, H, K, V] state).
"""

from __future__ import annotations

import torch

from bytelm.kernels import dispatch
from bytelm.kernels.chunked import real_positions, zero_padding
from bytelm.kernels.gla import naive


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t, per head.

    q, k, g [B, T, H, K] (g: log-gates <= 0), v [B, T, H, V], initial_state [B, H, K, V] or
    None, lengths [B] or None (positions past a row's length are identity steps); scale
    defaults to K^-1/2. Returns o [B, T, H, V] and the final state [B, H, K, V].
    """
    if dispatch.use_fla(q):
        from fla.ops.gla import chunk_gla as fla_chunk_gla

        naive.check_inputs(q, k, v, g, initial_state)
        real = real_positions(lengths, q.shape[0], q.shape[1], q.device)
        k, g = zero_padding(real, k, g)
        init = None if initial_state is None else initial_state.float()
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        return fla_chunk_gla(q, k, v, g.float(), scale=scale, initial_state=init, output_final_state=True)
    return naive.chunk_gla(q, k, v, g, scale, initial_state, lengths, chunk_size)


__all__ = ["chunk_gla"]
