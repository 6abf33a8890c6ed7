"""The chunked RWKV-7 recurrence (diagonal plus low-rank) equals the plain recurrence (float64):
outputs, final state and every gradient at odd lengths from a random initial state, with
RWKV-7's own choice a = -kappa, b = kappa * a_icl; padding past `lengths` is an identity step."""

import pytest
import torch
import torch.nn.functional as F
from gated_checks import assert_same

from bytelm.kernels.rwkv7 import chunk_rwkv7, naive


def rwkv_inputs(b, t, h, n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)
    kappa = F.normalize(rand(b, t, h, n), dim=-1)
    icl = torch.sigmoid(rand(b, t, h, n))
    return dict(
        r=rand(b, t, h, n), w=-torch.exp(-0.5 - F.softplus(rand(b, t, h, n))), k=rand(b, t, h, n),
        v=rand(b, t, h, n), a=-kappa, b=kappa * icl, initial_state=rand(b, h, n, n),
    )


@pytest.mark.parametrize("t", [1, 63, 257])
def test_chunked_equals_sequential(t):
    inputs = rwkv_inputs(2, t, 3, 5, seed=t)
    assert_same(lambda **kw: naive.chunk_rwkv7(**kw, chunk_size=16), naive.rwkv7_sequential, inputs)


def test_lengths_are_identity_steps():
    inputs = rwkv_inputs(3, 29, 2, 4, seed=1)
    lengths = torch.tensor([29, 7, 0])
    chunked = lambda **kw: naive.chunk_rwkv7(**kw, lengths=lengths, chunk_size=8)  # noqa: E731
    sequential = lambda **kw: naive.rwkv7_sequential(**kw, lengths=lengths)  # noqa: E731
    assert_same(chunked, sequential, inputs)
    o, final = chunked(**inputs)
    short = {n: (x[1:2] if n == "initial_state" else x[1:2, :7]) for n, x in inputs.items()}
    o7, final7 = naive.chunk_rwkv7(**short, chunk_size=8)
    torch.testing.assert_close(o[1:2, :7], o7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[1:2], final7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[2], inputs["initial_state"][2], rtol=0, atol=0)


def test_public_op_uses_the_reference_on_cpu():
    inputs = rwkv_inputs(1, 10, 1, 4)
    o, final = chunk_rwkv7(**inputs)
    o_ref, final_ref = naive.rwkv7_sequential(**inputs)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(final, final_ref)


def test_strongest_decay_of_the_range_stays_finite_in_float32():
    """w = -5 at every step (the op's range; RWKV-7's own w is >= -e^-0.5), chunks of 16."""
    inputs = rwkv_inputs(1, 100, 2, 8, seed=4, dtype=torch.float32)
    inputs["w"] = torch.full_like(inputs["w"], -5.0)
    o, final = naive.chunk_rwkv7(**inputs, chunk_size=16)
    o_ref, final_ref = naive.rwkv7_sequential(**inputs)
    assert torch.isfinite(o).all() and torch.isfinite(final).all()
    torch.testing.assert_close(o, o_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(final, final_ref, rtol=1e-4, atol=1e-4)
