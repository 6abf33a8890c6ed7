"""RMSNorm's one-function forward and hand-written backward against the composed reference."""

from __future__ import annotations

import pytest
import torch

from bytelm.layers.norm import RMSNorm, rms_norm, rms_norm_reference


def _inputs(dtype: torch.dtype, gated: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(3, 5, 16, generator=g) * 2).to(dtype).requires_grad_()
    weight = (1 + 0.3 * torch.randn(16, generator=g)).to(dtype).requires_grad_()
    gate = (torch.randn(3, 5, 16, generator=g) * 2).to(dtype).requires_grad_() if gated else None
    return x, weight, gate


@pytest.mark.parametrize("gated", [False, True])
def test_rms_norm_passes_gradcheck(gated):
    x, weight, gate = _inputs(torch.float64, gated)
    inputs = (x, weight) if gate is None else (x, weight, gate)
    assert torch.autograd.gradcheck(lambda *a: rms_norm(*a, eps=1e-5), inputs)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_rms_norm_equals_the_reference_in_outputs_and_every_gradient(gated, dtype, tol):
    x, weight, gate = _inputs(dtype, gated)
    leaves = [t for t in (x, weight, gate) if t is not None]
    dy = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1)).to(dtype)
    outs, grads = [], []
    for fn in (rms_norm, rms_norm_reference):
        y = fn(x, weight, gate, eps=1e-5)
        outs.append(y)
        grads.append(torch.autograd.grad(y, leaves, dy))
    assert outs[0].dtype == x.dtype
    torch.testing.assert_close(outs[0], outs[1], rtol=tol, atol=tol)
    for got, want in zip(*grads):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item())


def test_the_module_normalises_each_row_to_unit_rms_times_its_weight():
    norm = RMSNorm(16, eps=0.0).double()
    with torch.no_grad():
        norm.weight.fill_(3.0)
    x = torch.randn(4, 16, dtype=torch.float64) * 7
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1).sqrt(), torch.full((4,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_without_autograd_the_output_is_the_functions_bit_for_bit(gated, dtype):
    """Decoding runs the ops without the autograd function: the same numbers, so step ==
    forward does not depend on whether gradients are on."""
    x, weight, gate = _inputs(dtype, gated)
    with_grad = rms_norm(x, weight, gate, eps=1e-5)
    with torch.inference_mode():
        without = rms_norm(x, weight, gate, eps=1e-5)
    assert not without.requires_grad and without.dtype == x.dtype
    assert torch.equal(without, with_grad.detach())
    torch.testing.assert_close(without, rms_norm_reference(x, weight, gate, eps=1e-5).detach())
