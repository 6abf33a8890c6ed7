"""The SSD intra-chunk function's hand-written backward equals autograd of the composed ops."""

import pytest
import torch

from bytelm.kernels.ssd.intra import intra_chunk, intra_chunk_reference


def inputs(dtype, segments: bool, seed: int = 0):
    """cb [2, 3, 2, 8, 8], a_cs [2, 3, 2, 3, 8], xdt [2, 3, 2, 3, 8, 5] and a keep mask."""
    gen = torch.Generator().manual_seed(seed)
    b, c, g, r, n, p = 2, 3, 2, 3, 8, 5
    cb = torch.randn(b, c, g, n, n, generator=gen, dtype=dtype)
    a_cs = (-torch.rand(b, c, g, r, n, generator=gen, dtype=dtype) * 2).cumsum(-1)
    xdt = torch.randn(b, c, g, r, n, p, generator=gen, dtype=dtype)
    keep = torch.ones(n, n, dtype=torch.bool).tril()
    if segments:
        seg = (torch.rand(b, c, n, generator=gen) < 0.3).long().cumsum(-1)  # [b, c, l]
        keep = keep & (seg[:, :, None, None, :, None] == seg[:, :, None, None, None, :])
    return [t.requires_grad_() for t in (cb, a_cs, xdt)], keep


@pytest.mark.parametrize("segments", [False, True])
def test_gradcheck_float64(segments):
    (cb, a_cs, xdt), keep = inputs(torch.float64, segments)
    assert torch.autograd.gradcheck(lambda *t: intra_chunk(*t, keep), (cb, a_cs, xdt))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("segments", [False, True])
def test_equals_reference_output_and_every_gradient(dtype, tol, segments):
    (cb, a_cs, xdt), keep = inputs(dtype, segments, seed=1)
    ref = [t.detach().clone().requires_grad_() for t in (cb, a_cs, xdt)]
    y, y_ref = intra_chunk(cb, a_cs, xdt, keep), intra_chunk_reference(*ref, keep)
    torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (cb, a_cs, xdt), dy)
    grads_ref = torch.autograd.grad(y_ref, ref, dy)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_masked_pairs_get_no_gradient_even_with_growing_decay():
    """A masked pair (i < j) would be exp(positive); it must neither overflow nor leak gradient."""
    (cb, a_cs, xdt), keep = inputs(torch.float32, False, seed=2)
    with torch.no_grad():
        a_cs.mul_(100.0)  # the differences above the diagonal reach +1,000
    y = intra_chunk(cb, a_cs, xdt, keep)
    grads = torch.autograd.grad(y.sum(), (cb, a_cs, xdt))
    assert torch.isfinite(y).all() and all(torch.isfinite(g).all() for g in grads)
    assert (grads[0].triu(1) == 0).all()
