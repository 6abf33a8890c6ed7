"""Routing rules, chunk/dechunk, straight-through confidence and the ratio loss."""

import pytest
import torch

from bytelm.layers.chunking import (
    RatioLoss,
    Router,
    RoutingState,
    boundary_alignment,
    boundary_rate,
    chunk,
    chunk_capacity,
    dechunk,
    hnet_ratio,
    load_ratio_integrals,
    ratio_integrals,
    spacelike,
    ste_one,
    word_starts,
)


def ids_of(text: bytes) -> torch.Tensor:
    return torch.tensor([list(text)])


def test_dynamic_rule_and_identity_init():
    torch.manual_seed(0)
    r = Router("dynamic", 8).double()
    h = torch.randn(2, 6, 8)
    h[:, 3] = 2.5 * h[:, 2]  # same direction as the previous position: cos = 1, p = 0
    h[:, 4] = -h[:, 3]  # opposite: cos = -1, p = 1
    p, b = r(h, torch.zeros(2, 6, dtype=torch.long))
    assert torch.all(p[:, 0] == 1) and torch.all(b[:, 0])
    assert torch.allclose(p[:, 3], torch.zeros(2), atol=1e-12)
    assert torch.allclose(p[:, 4], torch.ones(2), atol=1e-12)
    assert torch.equal(b, p > 0.5)
    cos = torch.nn.functional.cosine_similarity(h[:, 1:], h[:, :-1], dim=-1)
    assert torch.allclose(p[:, 1:], (1 - cos) / 2)


def test_space_rule():
    ids = ids_of(b"ab, cd  \xc3\xa9f1 x")
    _, b = Router("space", 4)(torch.zeros(1, ids.shape[1], 4), ids)
    # starts: position 0, the ',' after "ab", the first ' ' after "cd", the ' ' after "f1"
    assert b[0].nonzero().flatten().tolist() == [0, 2, 6, 12]
    assert spacelike(torch.tensor([32, 44, 10, 256])).all()
    assert not spacelike(torch.tensor([65, 122, 48, 0xC3, 0xA9])).any()


def test_fixed_rule_continues_positions():
    router = Router("fixed:3", 4)
    _, b = router(torch.zeros(2, 7, 4), torch.zeros(2, 7, dtype=torch.long))
    assert b[0].nonzero().flatten().tolist() == [0, 3, 6]
    state = RoutingState(
        prev=torch.zeros(2, 4), prev_id=torch.zeros(2, dtype=torch.long), z=torch.zeros(2, 4),
        pos=torch.tensor([7, 5]), chunks=torch.zeros(2, dtype=torch.long),
    )
    _, b = router(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), state)
    assert b.tolist() == [[False, False, True], [False, True, False]]


def test_chunk_pads_rows_with_fewer_chunks():
    b = torch.tensor([[True, False, True, True], [True, False, False, False]])
    h = torch.arange(8.0).reshape(2, 4, 1)
    counts, (hc,) = chunk(b, h)
    assert counts.tolist() == [3, 1]
    assert hc[0, :, 0].tolist() == [0.0, 2.0, 3.0] and hc[1, 0, 0] == 4.0


def test_compiled_widths_are_the_capacity_or_the_whole_sequence():
    # 512 bytes at 3 bytes per chunk expect 171 chunks; x1.5 slack rounds up to 256, a multiple of 64
    assert chunk_capacity(512, 3.0) == 256
    assert chunk_capacity(512, 1.0) == 512 and chunk_capacity(100, 2.0) == 100  # capped at seqlen
    b = torch.zeros(2, 512, dtype=torch.bool)
    b[:, ::4] = True  # 128 chunks per row
    h = torch.randn(2, 512, 3)
    for capacity, width in [(None, 128), (256, 256), (128, 128), (64, 512)]:
        counts, (hc,) = chunk(b, h, capacity=capacity)
        assert hc.shape == (2, width, 3), (capacity, hc.shape)
        assert torch.equal(hc[:, :128], h[:, ::4])  # the real chunks, whatever the padding


def test_dechunk_is_the_ema_repeated():
    torch.manual_seed(1)
    b = torch.tensor([[True, False, True, True, False, True, False], [True, True, False, False, False, False, True]])
    p = torch.rand(2, 7) * 0.5 + 0.5
    counts, (pc,) = chunk(b, p)
    zc = torch.randn(2, int(counts.max()), 5)
    z0 = torch.randn(2, 5)
    z, last = dechunk(zc, pc, counts, b, z0, chunk_size=2)
    for row in range(2):
        value, j = z0[row], -1
        for t in range(7):
            if b[row, t]:
                j += 1
                q = pc[row, j].clamp(1e-4, 1 - 1e-4)
                value = q * zc[row, j] + (1 - q) * value
            assert torch.allclose(z[row, t], value, atol=1e-12)
        assert torch.allclose(last[row], value, atol=1e-12)


def test_straight_through_confidence():
    c = torch.tensor([0.7, 0.1, 0.999], requires_grad=True)
    one = ste_one(c)
    assert torch.equal(one.detach(), torch.ones(3))
    (one * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(c.grad, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("target", [2.0, 3.0, 6.0])
def test_ratio_loss(target):
    t = 120
    k = int(t / target)
    b = torch.zeros(1, t, dtype=torch.bool)
    b[0, :k] = True
    real = torch.ones(1, t, dtype=torch.bool)
    at_target = hnet_ratio(*boundary_rate(b.double() * 0 + k / t, b, real), target)  # F = G = 1/N
    assert torch.allclose(at_target, torch.tensor(1.0), atol=1e-12)
    assert hnet_ratio(*boundary_rate(torch.full((1, t), 0.9), torch.ones_like(b), real), target) > 1.0


def boundaries(t: int, every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """b [1, t] starting a chunk at every `every`-th position, and real [1, t] all true."""
    b = torch.zeros(1, t, dtype=torch.bool)
    b[0, ::every] = True
    return b, torch.ones_like(b)


def test_ratio_loss_integral_is_dual_ascent_on_the_boundary_rate():
    """Gain 0 is H-Net's loss; otherwise each training pass adds gain x (N F - 1) to I, the
    loss's slope in G grows by weight x I, and evaluation passes leave I alone."""
    target, weight, gain = 3.0, 0.03, 0.05
    b, real = boundaries(120, 2)  # F = 1/2: too many chunks for N = 3
    p = torch.full((1, 120), 0.4, dtype=torch.float64, requires_grad=True)
    plain = RatioLoss(target, weight, 0.0).double()
    assert torch.equal(plain(p, b, real), weight * hnet_ratio(*boundary_rate(p, b, real), target))
    assert float(plain.integral) == 0.0
    controlled = RatioLoss(target, weight, gain).double()
    controlled(p, b, real)
    assert float(controlled.integral) == pytest.approx(gain * (target / 2 - 1))
    controlled(p, b, real)
    integral = 2 * gain * (target / 2 - 1)
    assert float(controlled.integral) == pytest.approx(integral)
    (slope,) = torch.autograd.grad(controlled(p, b, real) - plain(p, b, real), p)
    torch.testing.assert_close(slope, torch.full_like(p, weight * integral / 120))
    controlled.eval()
    controlled(p, b, real)
    assert float(controlled.integral) == pytest.approx(3 * gain * (target / 2 - 1))
    b, real = boundaries(120, 6)  # F = 1/6: too few chunks, I falls back
    controlled.train()
    controlled(p, b, real)
    assert float(controlled.integral) == pytest.approx(3 * gain * 0.5 + gain * (0.5 - 1))


def test_ratio_integrals_round_trip():
    model = torch.nn.Sequential(RatioLoss(3.0, 0.03, 0.05), torch.nn.Linear(2, 2), RatioLoss(2.0, 0.03, 0.05))
    load_ratio_integrals(model, [0.25, -1.5])
    assert ratio_integrals(model) == [0.25, -1.5]
    with pytest.raises(ValueError, match="holds 1"):
        load_ratio_integrals(model, [0.25])


def test_boundary_alignment_counts_word_starts_and_the_byte_before_them():
    ids = ids_of(b"the cat sat")
    starts = word_starts(ids)
    assert starts[0].nonzero().flatten().tolist() == [4, 8]
    b = torch.zeros_like(starts)
    b[0, [0, 3, 4, 6]] = True  # 3: the space before "cat", 4: "cat" itself
    stats = boundary_alignment(b, starts, torch.ones_like(b))
    assert stats["word_start_precision"].item() == pytest.approx(1 / 4)
    assert stats["word_start_recall"].item() == pytest.approx(1 / 2)
    assert stats["word_edge_precision"].item() == pytest.approx(2 / 4)
    assert stats["word_edge_recall"].item() == pytest.approx(1 / 2)  # "cat" once, though cut twice
    real = torch.ones_like(b)
    real[0, 8:] = False  # "sat" is padding: its start is no word, so the space before it no edge
    b[0, [7, 8]] = True
    stats = boundary_alignment(b, starts, real)
    assert stats["word_edge_precision"].item() == pytest.approx(2 / 5)
    assert stats["word_edge_recall"].item() == pytest.approx(1.0)


def test_the_space_rule_cuts_at_every_word_edge_and_never_on_a_word_start():
    ids = ids_of(b"the cat sat on a mat")
    router = Router("space", 8)
    b = router(torch.zeros(1, ids.shape[1], 8), ids)[1]
    stats = boundary_alignment(b, word_starts(ids), torch.ones_like(b))
    assert stats["word_start_precision"].item() == 0.0
    assert stats["word_edge_recall"].item() == 1.0