"""Analytic forward FLOPs per position of the gated recurrent families: g (GLA), d (Gated
DeltaNet), w (RWKV-7), counted as their chunked references compute them.

A multiply-add counts 2 FLOPs. `linear`: every projection (low-rank gates included). `conv`:
Gated DeltaNet's short depthwise conv on q, k, v. `scan`: the matrix products of the chunked
algorithm per chunk of L positions, over whole L x L blocks as the reference forms them:
- GLA (chunk 16): the pairwise-decayed scores q_i (k_j exp(c_i - c_j)) (2 L K per position and
  head), scores x v (2 L V), the chunk state k^T v and the inter-chunk read-out q S (2 K V each);
- Gated DeltaNet (chunk ssm_chunk_size): the Gram matrices k k^T and q k^T (2 L K each), the
  triangular solve for the UT transform (L (V + K) per position, half of a dense L x L product),
  the intra scores x delta (2 L V), and the per-chunk read-out W S, the chunk state k^T delta
  and the read-out q S (2 K V each);
- RWKV-7 (chunk 16): four pairwise-decayed score matrices (a.b, a.k, q.b, q.k: 8 L K), the
  solve (L V + L K), three block products against V or Z (6 L V), and W S, q S and the two
  chunk-state products (8 K V).
Elementwise work (norms, activations, gating, the pairwise decays themselves) is left out, as
in `bytelm.models.flops`.
"""

from __future__ import annotations

from bytelm.config import ModelConfig
from bytelm.layers.gla import GATE_RANK
from bytelm.layers.rwkv7 import rwkv_ranks

NARROW_CHUNK = 16  # the chunk of the pairwise-decay references (GLA, RWKV-7)


def gated_flops(cfg: ModelConfig, level: int, kind: str, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per position of one g, d or w mixer at `level`, sequence length `seq_len`."""
    d = cfg.d_model[level]
    if kind == "g":
        h, dk, dv = cfg.gla_heads[level], d // 2, d
        lq = min(NARROW_CHUNK, cfg.ssm_chunk_size, max(1, seq_len))
        linear = 2 * d * (2 * dk + 2 * dv) + 2 * GATE_RANK * (d + dk) + 2 * dv * d
        scan = 2 * lq * (dk + dv) + 4 * dk * dv / h
        return {"linear": linear, "scan": scan}
    if kind == "d":
        h, dk, dv = cfg.gdn_heads[level], d, cfg.gdn_expand_v[level] * d
        lq = min(cfg.ssm_chunk_size, max(1, seq_len))
        linear = 2 * d * (2 * dk + 2 * dv + 2 * h) + 2 * dv * d
        conv = 2 * (2 * dk + dv) * cfg.ssm_d_conv
        scan = 4 * lq * dk + lq * (dv + dk) + 2 * lq * dv + 6 * dk * dv / h
        return {"linear": linear, "conv": conv, "scan": scan}
    if kind == "w":
        h = cfg.rwkv_heads[level]
        rw, ra, rg = rwkv_ranks(d)
        lq = min(NARROW_CHUNK, cfg.ssm_chunk_size, max(1, seq_len))
        linear = 2 * d * 4 * d + 4 * d * (rw + ra + rg)  # r, k, v, output; three low-rank pairs
        scan = 8 * lq * d + lq * 2 * d + 6 * lq * d + 8 * d * d / h
        return {"linear": linear, "scan": scan}
    raise ValueError(f"gated_flops: {kind!r} is not one of g, d, w")


def solve_flops(cfg: ModelConfig, level: int, kind: str, seq_len: int) -> float:
    """The part of `gated_flops(...)["scan"]` that is the delta rules' triangular solve."""
    d = cfg.d_model[level]
    if kind == "d":
        return min(cfg.ssm_chunk_size, max(1, seq_len)) * (cfg.gdn_expand_v[level] * d + d)
    if kind == "w":
        return min(NARROW_CHUNK, cfg.ssm_chunk_size, max(1, seq_len)) * 2 * d
    return 0.0


def channel_mix_flops(cfg: ModelConfig, level: int) -> float:
    """Forward FLOPs per position of RWKV-7's channel mix (`W`): two projections, no gate."""
    return 4 * cfg.d_model[level] * cfg.d_intermediate[level]
