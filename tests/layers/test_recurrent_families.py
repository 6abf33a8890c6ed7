"""RetNet, linear attention, S4D and Mega: the chunked pass (one `chunk_scan` call) equals the
plain recurrence (`step` position by position, which never calls the scan), outputs, final
state and every gradient, at odd lengths across chunk boundaries and from a random initial
state; padded positions are identity steps; `commit` keeps a row's state."""

import dataclasses

import pytest
import torch
from family_mixers import D_MODEL, FAMILIES, make, random_state

from bytelm.layers.state import tree_leaves


def float_leaves(state):
    return [t for t in tree_leaves(state) if t.is_floating_point()]


def sequential(mixer, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = mixer.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


def run(mixer, x, state, chunked: bool):
    """(y, final state, gradients of x, parameters and the initial state's float leaves)."""
    x = x.clone().requires_grad_()
    init = type(state)(**{
        f.name: getattr(state, f.name).clone().requires_grad_(getattr(state, f.name).is_floating_point())
        for f in dataclasses.fields(state)
    })
    y, final = mixer(x, init) if chunked else sequential(mixer, x, init)
    gen = torch.Generator().manual_seed(5)
    loss = (y * torch.randn(y.shape, generator=gen)).sum()
    for leaf in float_leaves(final):
        loss = loss + (leaf * torch.randn(leaf.shape, generator=gen, dtype=leaf.dtype)).sum()
    inputs = [x, *mixer.parameters(), *float_leaves(init)]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return y.detach(), final, grads


@pytest.mark.parametrize("seqlen", [1, 63, 257])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chunked_equals_sequential(family, seqlen):
    mixer = make(family)
    x = torch.randn(2, seqlen, D_MODEL, generator=torch.Generator().manual_seed(seqlen))
    state = random_state(mixer, 2)
    y, final, grads = run(mixer, x, state, chunked=True)
    y_seq, final_seq, grads_seq = run(mixer, x, state, chunked=False)
    assert (y - y_seq).abs().max().item() < 1e-10
    for a, b in zip(tree_leaves(final), tree_leaves(final_seq)):
        if a.is_floating_point():
            assert (a - b).abs().max().item() < 1e-10
        else:
            assert torch.equal(a, b)
    names = ["x", *(n for n, _ in mixer.named_parameters()), *(f"state{i}" for i in range(len(grads)))]
    for name, a, b in zip(names, grads, grads_seq):
        assert (a is None) == (b is None), name
        if a is not None:
            assert (a - b).abs().max().item() < 1e-9 * max(1.0, b.abs().max().item()), name


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_padding_is_identity_and_pieces_continue(family):
    mixer = make(family, seed=2)
    x = torch.randn(2, 21, D_MODEL)
    state = random_state(mixer, 2)
    with torch.no_grad():
        ref, ref_state = mixer(x, state)
        y1, s1 = mixer(x[:, :9], state)
        y2, s2 = mixer(x[:, 9:], s1)
        assert (torch.cat([y1, y2], 1) - ref).abs().max().item() < 1e-12
        for a, b in zip(tree_leaves(s2), tree_leaves(ref_state)):
            assert torch.allclose(a, b, atol=1e-12, rtol=0)
        # Row 0 has 6 real positions then padding: its state is the state after those 6.
        _, padded = mixer(x, state, torch.tensor([6, 21]))
        row0 = type(state)(**{f.name: getattr(state, f.name)[:1] for f in dataclasses.fields(state)})
        _, six = mixer(x[:1, :6], row0)
        for a, b in zip(tree_leaves(padded), tree_leaves(six)):
            assert torch.allclose(a[:1], b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_step_commit_keeps_state(family):
    mixer = make(family, seed=3)
    state = random_state(mixer, 2)
    with torch.no_grad():
        _, new = mixer.step(torch.randn(2, D_MODEL), state, commit=torch.tensor([True, False]))
    for a, b in zip(tree_leaves(new), tree_leaves(state)):
        assert torch.equal(a[1], b[1])
    assert not torch.equal(float_leaves(new)[0][0], float_leaves(state)[0][0])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reset_parameters_restores_the_init(family):
    """Each mixer owns its initialisation: reset_parameters sets every parameter it holds."""
    mixer = make(family)
    with torch.no_grad():
        for p in mixer.parameters():
            p.fill_(float("nan"))
    mixer.reset_parameters()
    assert all(torch.isfinite(p).all() for p in mixer.parameters())
