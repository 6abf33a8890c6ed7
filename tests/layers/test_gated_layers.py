"""GLA, Gated DeltaNet and RWKV-7 layers: the chunked pass equals `step` position by position
(which never calls the chunked op), outputs, final state and every gradient, at odd lengths
from a random initial state; padded positions are identity steps; `commit` keeps a row's state;
reset_parameters sets every parameter."""

import pytest
import torch
from family_mixers import random_state
from gated_mixers import D_MODEL, GATED, make
from test_recurrent_families import float_leaves, run

from bytelm.layers.state import tree_leaves


@pytest.mark.parametrize("seqlen", [1, 63, 257])
@pytest.mark.parametrize("family", sorted(GATED))
def test_chunked_equals_sequential(family, seqlen):
    mixer = make(family)
    x = torch.randn(2, seqlen, D_MODEL, generator=torch.Generator().manual_seed(seqlen))
    state = random_state(mixer, 2)
    y, final, grads = run(mixer, x, state, chunked=True)
    y_seq, final_seq, grads_seq = run(mixer, x, state, chunked=False)
    assert (y - y_seq).abs().max().item() < 1e-10
    for a, b in zip(tree_leaves(final), tree_leaves(final_seq)):
        assert (a - b).abs().max().item() < 1e-10
    names = ["x", *(n for n, _ in mixer.named_parameters()), *(f"state{i}" for i in range(len(grads)))]
    for name, a, b in zip(names, grads, grads_seq):
        assert (a is None) == (b is None), name
        if a is not None:
            assert (a - b).abs().max().item() < 1e-9 * max(1.0, b.abs().max().item()), name


@pytest.mark.parametrize("family", sorted(GATED))
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
        _, padded = mixer(x, state, torch.tensor([6, 21]))
        row0 = type(state)(**{k: v[:1] for k, v in vars(state).items()})
        _, six = mixer(x[:1, :6], row0)
        for a, b in zip(tree_leaves(padded), tree_leaves(six)):
            assert torch.allclose(a[:1], b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("family", sorted(GATED))
def test_step_commit_keeps_state(family):
    mixer = make(family, seed=3)
    state = random_state(mixer, 2)
    with torch.no_grad():
        _, new = mixer.step(torch.randn(2, D_MODEL), state, commit=torch.tensor([True, False]))
    for a, b in zip(tree_leaves(new), tree_leaves(state)):
        assert torch.equal(a[1], b[1])
    assert not torch.equal(float_leaves(new)[0][0], float_leaves(state)[0][0])


@pytest.mark.parametrize("family", sorted(GATED))
def test_reset_parameters_restores_the_init(family):
    mixer = make(family)
    with torch.no_grad():
        for p in mixer.parameters():
            p.fill_(float("nan"))
    mixer.reset_parameters()
    assert all(torch.isfinite(p).all() for p in mixer.parameters())
