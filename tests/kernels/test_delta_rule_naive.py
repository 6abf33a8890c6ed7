"""The chunked gated delta rule (UT representation) equals the plain recurrence (float64):
outputs, final state and every gradient at odd lengths from a random initial state; padding
past `lengths` is an identity step; with alpha = 1 and beta = 1 a key reads back its value."""

import pytest
import torch
import torch.nn.functional as F
from gated_checks import assert_same

from bytelm.kernels.delta_rule import chunk_gated_delta_rule, naive


def delta_inputs(b, t, h, dk, dv, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)
    return dict(
        q=rand(b, t, h, dk), k=F.normalize(rand(b, t, h, dk), dim=-1), v=rand(b, t, h, dv),
        g=F.logsigmoid(rand(b, t, h) + 3.0), beta=torch.sigmoid(rand(b, t, h)),
        initial_state=rand(b, h, dk, dv),
    )


@pytest.mark.parametrize("t", [1, 63, 257])
def test_chunked_equals_sequential(t):
    inputs = delta_inputs(2, t, 3, 5, 4, seed=t)
    chunked = lambda **kw: naive.chunk_gated_delta_rule(**kw, chunk_size=16)  # noqa: E731
    assert_same(chunked, naive.gated_delta_rule_sequential, inputs)


def test_lengths_are_identity_steps():
    inputs = delta_inputs(3, 29, 2, 4, 3, seed=1)
    lengths = torch.tensor([29, 7, 0])
    chunked = lambda **kw: naive.chunk_gated_delta_rule(**kw, lengths=lengths, chunk_size=8)  # noqa: E731
    sequential = lambda **kw: naive.gated_delta_rule_sequential(**kw, lengths=lengths)  # noqa: E731
    assert_same(chunked, sequential, inputs)
    o, final = chunked(**inputs)
    short = {n: (x[1:2] if n == "initial_state" else x[1:2, :7]) for n, x in inputs.items()}
    o7, final7 = naive.chunk_gated_delta_rule(**short, chunk_size=8)
    torch.testing.assert_close(o[1:2, :7], o7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[1:2], final7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[2], inputs["initial_state"][2], rtol=0, atol=0)


def test_full_write_replaces_the_value():
    """alpha = 1, beta = 1: after writing (k, v), reading with q = k returns v exactly."""
    inputs = delta_inputs(1, 12, 1, 6, 3, seed=2)
    inputs.update(g=torch.zeros(1, 12, 1, dtype=torch.float64), beta=torch.ones(1, 12, 1, dtype=torch.float64))
    inputs["q"] = inputs["k"].clone()
    o, _ = naive.chunk_gated_delta_rule(**inputs, scale=1.0, chunk_size=4)
    torch.testing.assert_close(o, inputs["v"], rtol=0, atol=1e-12)


def test_public_op_uses_the_reference_on_cpu():
    inputs = delta_inputs(1, 10, 1, 4, 4)
    o, final = chunk_gated_delta_rule(**inputs)
    o_ref, final_ref = naive.gated_delta_rule_sequential(**inputs)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(final, final_ref)
