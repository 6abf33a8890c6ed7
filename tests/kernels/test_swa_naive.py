"""The blocked sliding-window reference equals dense masked softmax attention (float64)."""

import math

import pytest
import torch
from kernel_checks import qkv_inputs as make_qkv

from bytelm.kernels.swa import naive


def dense_reference(q, k, v, window, sinks=0, seq_idx=None):
    """O(T^2) attention with the explicit mask: window, sinks per segment, same segment only."""
    b, t, h, d = q.shape
    rep = h // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    start = naive.segment_starts(seq_idx, b, t, q.device)  # [B, T]
    pos = torch.arange(t)
    qi, kj = pos[:, None], pos[None, :]
    mask = (kj <= qi) & ((qi - kj < window) | (kj - start[:, :, None] < sinks))  # [B, T, T]
    mask = mask & (kj >= start[:, :, None])
    s = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(d)
    s = s.masked_fill(~mask[:, None], float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", torch.softmax(s, dim=-1), v)


@pytest.mark.parametrize(
    "t,window,sinks,hkv",
    [(37, 8, 0, 4), (37, 8, 3, 2), (29, 5, 2, 1), (13, 64, 4, 2), (50, 1, 2, 4), (40, 7, 9, 2), (3, 8, 4, 2)],
)
def test_equals_dense(t, window, sinks, hkv):
    q, k, v = make_qkv(2, t, 4, hkv, 6, seed=t + window)
    out = naive.sliding_window_attention(q, k, v, window, sinks)
    assert out.shape == q.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, dense_reference(q, k, v, window, sinks), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window,sinks", [(6, 0), (6, 2), (4, 3)])
def test_seq_idx_equals_dense_and_segments_alone(window, sinks):
    q, k, v = make_qkv(2, 33, 4, 2, 6, seed=7)
    seq_idx = torch.zeros(2, 33, dtype=torch.long)
    seq_idx[0, 10:] = 1
    seq_idx[0, 11:] = 5
    seq_idx[1, 20:] = 2
    out = naive.sliding_window_attention(q, k, v, window, sinks, seq_idx)
    torch.testing.assert_close(
        out, dense_reference(q, k, v, window, sinks, seq_idx), rtol=1e-10, atol=1e-10
    )
    for row, bounds in ((0, [0, 10, 11, 33]), (1, [0, 20, 33])):
        for s, e in zip(bounds[:-1], bounds[1:]):
            alone = naive.sliding_window_attention(
                q[row : row + 1, s:e], k[row : row + 1, s:e], v[row : row + 1, s:e], window, sinks
            )
            torch.testing.assert_close(out[row : row + 1, s:e], alone, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("segments", [True, False])
def test_gradients_equal_dense(segments):
    """Both paths: segments (composed scores) and one segment per row (the fused SDPA call)."""
    q, k, v = make_qkv(1, 23, 4, 2, 5, seed=3)
    seq_idx = None
    if segments:
        seq_idx = torch.zeros(1, 23, dtype=torch.long)
        seq_idx[0, 14:] = 1
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    w = torch.randn(1, 23, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g1 = torch.autograd.grad(
        (naive.sliding_window_attention(*leaves, 4, 2, seq_idx) * w).sum(), leaves
    )
    g2 = torch.autograd.grad((dense_reference(*leaves, 4, 2, seq_idx) * w).sum(), leaves)
    for a, b in zip(g1, g2):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_output_dtype_and_bad_shapes():
    q, k, v = make_qkv(1, 9, 2, 1, 4, dtype=torch.float32)
    assert naive.sliding_window_attention(q, k, v, 3, 1).dtype == torch.float32
    half = [t.to(torch.bfloat16) for t in (q, k, v)]
    assert naive.sliding_window_attention(*half, 3, 1).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="divisible"):
        naive.sliding_window_attention(q, k.expand(1, 9, 3, 4)[:, :, :3], v.expand(1, 9, 3, 4), 3)
    with pytest.raises(ValueError, match="window"):
        naive.sliding_window_attention(q, k, v, 0)
