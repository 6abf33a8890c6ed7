"""The chunked SSD reference equals the plain sequential recurrence (float64)."""

import pytest
import torch
from kernel_checks import ssd_inputs as make_inputs

from bytelm.kernels.ssd import naive


def random_seq_idx(b, t, seed=0):
    """Ids with a few segments per row at random places (row 0 also has a length-1 segment)."""
    gen = torch.Generator().manual_seed(seed + 1)
    change = (torch.rand(b, t, generator=gen) < 0.12).long()
    change[:, 0] = 0
    if t > 6:
        change[0, 5] = change[0, 6] = 1
    return change.cumsum(dim=1) * 3  # ids need not be consecutive


@pytest.mark.parametrize("t,chunk", [(37, 8), (16, 16), (5, 16), (63, 16)])
@pytest.mark.parametrize("with_init", [False, True])
def test_chunked_equals_sequential(t, chunk, with_init):
    x, dt, A, B, C, D, h0 = make_inputs(2, t, 4, 3, 2, 5)
    init = h0 if with_init else None
    y, final = naive.chunk_scan(
        x, dt, A, B, C, chunk, D=D, initial_state=init, return_final_state=True
    )
    y_ref, final_ref = naive.chunk_scan_sequential(x, dt, A, B, C, D=D, initial_state=init)
    assert y.shape == (2, t, 4, 3) and y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(final, final_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("with_init", [False, True])
def test_seq_idx_equals_sequential_and_isolates_segments(with_init):
    x, dt, A, B, C, D, h0 = make_inputs(2, 41, 2, 3, 1, 4, seed=3)
    seq_idx = random_seq_idx(2, 41)
    init = h0 if with_init else None
    y, final = naive.chunk_scan(
        x, dt, A, B, C, 8, D=D, initial_state=init, seq_idx=seq_idx, return_final_state=True
    )
    y_ref, final_ref = naive.chunk_scan_sequential(
        x, dt, A, B, C, D=D, initial_state=init, seq_idx=seq_idx
    )
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(final, final_ref, rtol=1e-10, atol=1e-10)
    # Each segment run alone gives the same outputs.
    for row in range(2):
        ids = seq_idx[row]
        bounds = [0] + [i for i in range(1, 41) if ids[i] != ids[i - 1]] + [41]
        for s, e in zip(bounds[:-1], bounds[1:]):
            sl = slice(s, e)
            seg_init = init[row : row + 1] if (init is not None and s == 0) else None
            y_seg = naive.chunk_scan(
                x[row : row + 1, sl],
                dt[row : row + 1, sl],
                A,
                B[row : row + 1, sl],
                C[row : row + 1, sl],
                8,
                D=D,
                initial_state=seg_init,
            )
            torch.testing.assert_close(y[row : row + 1, sl], y_seg, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("b,h,g,chunk", [(1, 2, 1, 8), (2, 6, 2, 4)])
def test_gradients_match_sequential(b, h, g, chunk):
    """Every gradient of the chunked form against autograd through the recurrence (several
    heads per group, several rows, segments across chunk edges)."""
    x, dt, A, B, C, D, h0 = make_inputs(b, 19, h, 3, g, 4, seed=5)
    seq_idx = random_seq_idx(b, 19, seed=2)
    leaves = [t.clone().requires_grad_() for t in (x, dt, A, B, C, D, h0)]
    gen = torch.Generator().manual_seed(9)
    wy = torch.randn(b, 19, h, 3, generator=gen, dtype=torch.float64)
    wf = torch.randn(b, h, 3, 4, generator=gen, dtype=torch.float64)

    def loss(fn, *args, **kw):
        y, f = fn(*args, **kw)
        return (y * wy).sum() + (f * wf).sum()

    xs, dts, As, Bs, Cs, Ds, h0s = leaves
    g1 = torch.autograd.grad(
        loss(
            naive.chunk_scan,
            xs,
            dts,
            As,
            Bs,
            Cs,
            chunk,
            D=Ds,
            initial_state=h0s,
            seq_idx=seq_idx,
            return_final_state=True,
        ),
        leaves,
    )
    g2 = torch.autograd.grad(
        loss(
            naive.chunk_scan_sequential,
            xs,
            dts,
            As,
            Bs,
            Cs,
            D=Ds,
            initial_state=h0s,
            seq_idx=seq_idx,
        ),
        leaves,
    )
    for a, b in zip(g1, g2):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_float32_and_no_nan_on_long_decay():
    x, dt, A, B, C, D, _ = make_inputs(1, 50, 2, 3, 2, 4, dtype=torch.float32)
    dt = dt * 100  # decays of exp(-100) and smaller must not overflow or give NaN
    y = naive.chunk_scan(x, dt, A, B, C, 16)
    y_ref, _ = naive.chunk_scan_sequential(
        x.double(), dt.double(), A.double(), B.double(), C.double()
    )
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4)


def test_bad_shapes_raise():
    x, dt, A, B, C, D, h0 = make_inputs(1, 8, 4, 3, 2, 5)
    with pytest.raises(ValueError, match="dt"):
        naive.chunk_scan(x, dt[:, :, :2], A, B, C, 4)
    with pytest.raises(ValueError, match="divisible"):
        naive.chunk_scan(
            x, dt, A, B[:, :, :1].expand(1, 8, 3, 5), C[:, :, :1].expand(1, 8, 3, 5), 4
        )
