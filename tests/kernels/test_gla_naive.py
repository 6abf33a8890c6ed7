"""The chunked GLA reference equals the plain recurrence (float64): outputs, final state and
every gradient at odd lengths across chunk boundaries, from a random initial state; padding
past `lengths` is an identity step; strong gates stay finite."""

import pytest
import torch
import torch.nn.functional as F
from gated_checks import assert_same

from bytelm.kernels.gla import chunk_gla, naive


def gla_inputs(b, t, h, dk, dv, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)
    return dict(
        q=rand(b, t, h, dk), k=rand(b, t, h, dk), v=rand(b, t, h, dv),
        g=F.logsigmoid(rand(b, t, h, dk) + 2.0), initial_state=rand(b, h, dk, dv),
    )


@pytest.mark.parametrize("t", [1, 63, 257])
def test_chunked_equals_sequential(t):
    inputs = gla_inputs(2, t, 3, 5, 4, seed=t)
    assert_same(lambda **kw: naive.chunk_gla(**kw, chunk_size=16), naive.gla_sequential, inputs)


def test_lengths_are_identity_steps():
    inputs = gla_inputs(3, 29, 2, 4, 3, seed=1)
    lengths = torch.tensor([29, 7, 0])
    chunked = lambda **kw: naive.chunk_gla(**kw, lengths=lengths, chunk_size=8)  # noqa: E731
    sequential = lambda **kw: naive.gla_sequential(**kw, lengths=lengths)  # noqa: E731
    assert_same(chunked, sequential, inputs)
    o, final = chunked(**inputs)
    short = {n: (x[1:2, :7] if x.dim() == 4 and n != "initial_state" else x[1:2]) for n, x in inputs.items()}
    o7, final7 = naive.chunk_gla(**short, chunk_size=8)
    torch.testing.assert_close(o[1:2, :7], o7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[1:2], final7, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[2], inputs["initial_state"][2], rtol=0, atol=0)


def test_strong_gates_stay_finite_in_float32():
    inputs = gla_inputs(1, 200, 2, 8, 8, dtype=torch.float32)
    inputs["g"] = torch.full_like(inputs["g"], -5.0)  # the layers' floor, 64-position chunks
    o, final = naive.chunk_gla(**inputs, chunk_size=64)
    o_ref, final_ref = naive.gla_sequential(**inputs)
    assert torch.isfinite(o).all() and torch.isfinite(final).all()
    torch.testing.assert_close(o, o_ref, rtol=1e-4, atol=1e-4)


def test_public_op_uses_the_reference_on_cpu():
    inputs = gla_inputs(1, 10, 1, 4, 4)
    o, final = chunk_gla(**inputs)
    o_ref, final_ref = naive.gla_sequential(**inputs)
    torch.testing.assert_close(o, o_ref)
    torch.testing.assert_close(final, final_ref)


def test_bad_shapes_name_the_argument():
    inputs = gla_inputs(1, 4, 1, 4, 3)
    with pytest.raises(ValueError, match="initial_state"):
        naive.chunk_gla(**{**inputs, "initial_state": torch.zeros(1, 1, 3, 4, dtype=torch.float64)})
