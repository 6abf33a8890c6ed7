"""RWKV-7's generalised delta rule (diagonal decay plus a low-rank removal term).

`chunk_rwkv7` is the public op; `naive.py` is its specification in pure PyTorch. On CUDA with
flash-linear-attention installed, `bytelm.kernels.dispatch.use_fla` sends it to fla's
`chunk_rwkv7` Triton kernels (same [B, T, H, *] layout, same [B, H, K, V] state).
"""

from __future__ import annotations

import torch

from bytelm.kernels import dispatch
from bytelm.kernels.chunked import real_positions, zero_padding
from bytelm.kernels.rwkv7 import naive


def chunk_rwkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    scale: float = 1.0,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S_t = diag(exp(w_t)) S_{t-1} + b_t^T (a_t S_{t-1}) + k_t^T v_t, o_t = scale r_t S_t.

    r, w (log-decay <= 0), k, a, b [B, T, H, K], v [B, T, H, V], initial_state [B, H, K, V] or
    None, lengths [B] or None (positions past a row's length are identity steps). Returns
    o [B, T, H, V] and the final state [B, H, K, V].
    """
    if dispatch.use_fla(r):
        from fla.ops.rwkv7 import chunk_rwkv7 as fla_chunk_rwkv7

        naive.check_inputs(r, w, k, v, a, b, initial_state)
        w, k, a = zero_padding(real_positions(lengths, r.shape[0], r.shape[1], r.device), w, k, a)
        init = None if initial_state is None else initial_state.float()
        return fla_chunk_rwkv7(
            r, w.to(r.dtype), k, v, a, b, scale=scale, initial_state=init, output_final_state=True
        )
    return naive.chunk_rwkv7(r, w, k, v, a, b, scale, initial_state, lengths, chunk_size)


__all__ = ["chunk_rwkv7"]
