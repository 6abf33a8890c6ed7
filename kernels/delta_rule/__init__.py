"""The gated delta rule (Gated DeltaNet).

`chunk_gated_delta_rule` is the public op; `naive.py` is its specification in pure PyTorch. On
CUDA with flash-linear-attention installed, `bytelm.kernels.dispatch.use_fla` sends it to fla's
`chunk_gated_delta_rule` Triton kernels (same [B, T, H, *] layout, same [B, H, K, V] state).
"""

from __future__ import annotations

import torch

from bytelm.kernels import dispatch
from bytelm.kernels.chunked import real_positions, zero_padding
from bytelm.kernels.delta_rule import naive


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S_t = exp(g_t) (I - beta_t k_t^T k_t) S_{t-1} + beta_t k_t^T v_t, o_t = scale q_t S_t.

    q, k [B, T, H, K] (k L2-normalised by the caller), v [B, T, H, V], g (log-gate <= 0) and
    beta [B, T, H], initial_state [B, H, K, V] or None, lengths [B] or None (positions past a
    row's length are identity steps); scale defaults to K^-1/2. Returns o [B, T, H, V] and the
    final state [B, H, K, V].
    """
    if dispatch.use_fla(q):
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule as fla_chunk_gated_delta_rule

        naive.check_inputs(q, k, v, g, beta, initial_state)
        real = real_positions(lengths, q.shape[0], q.shape[1], q.device)
        g, beta = zero_padding(real, g, beta)
        init = None if initial_state is None else initial_state.float()
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        return fla_chunk_gated_delta_rule(
            q, k, v, g.float(), beta.to(q.dtype), scale=scale, initial_state=init, output_final_state=True
        )
    return naive.chunk_gated_delta_rule(q, k, v, g, beta, scale, initial_state, lengths, chunk_size)


__all__ = ["chunk_gated_delta_rule"]
