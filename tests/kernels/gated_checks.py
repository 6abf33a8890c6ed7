"""Shared checks of the chunked linear-recurrence references against their sequential specs:
outputs, final state and every gradient (inputs and initial state) in float64."""

import torch


def grads_of(fn, inputs: dict[str, torch.Tensor], seed: int = 5):
    """(outputs, gradients by name) of a random linear function of fn's (o, final state)."""
    leaves = {name: t.detach().clone().requires_grad_() for name, t in inputs.items()}
    o, final = fn(**leaves)
    gen = torch.Generator().manual_seed(seed)
    loss = (o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum()
    loss = loss + (final * torch.randn(final.shape, generator=gen, dtype=final.dtype)).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return (o.detach(), final.detach()), dict(zip(leaves, grads))


def assert_same(chunked, sequential, inputs: dict[str, torch.Tensor], tol: float = 1e-10) -> None:
    """chunked(**inputs) equals sequential(**inputs): outputs, final state, every gradient."""
    (o, final), grads = grads_of(chunked, inputs)
    (o_ref, final_ref), grads_ref = grads_of(sequential, inputs)
    assert o.dtype == torch.float64 and final.dtype == torch.float64
    assert (o - o_ref).abs().max().item() < tol * max(1.0, o_ref.abs().max().item())
    assert (final - final_ref).abs().max().item() < tol * max(1.0, final_ref.abs().max().item())
    for name, g in grads.items():
        ref = grads_ref[name]
        assert (g - ref).abs().max().item() < 10 * tol * max(1.0, ref.abs().max().item()), name
