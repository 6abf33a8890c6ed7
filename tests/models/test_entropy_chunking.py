"""The entropy rule: causal, decoding equals the forward pass, flat state, FLOPs, frozen LM."""

from __future__ import annotations

import pytest
import torch
from entropy_fixtures import entropy_hybrid, save_entropy_lm
from hybrid_helpers import text_ids

from bytelm.layers.entropy_chunking import EntropyRouter, entropy_scores
from bytelm.layers.state import tree_nbytes
from bytelm.models import build_model


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_entropy_lm(tmp_path_factory.mktemp("entropy-lm"))


def scores(model, ids: torch.Tensor) -> torch.Tensor:
    router: EntropyRouter = model.backbone.router
    h, before, _, _ = router.entropies(ids)
    return entropy_scores(h, before, router.mode)


def hybrid_in_a_gap(lm_dir, mode: str, ids: torch.Tensor, fraction: float = 0.35):
    """A hybrid whose threshold sits in the widest gap between the scores of `ids` near the
    `fraction` quantile from the top, so float32 noise between code paths cannot flip a boundary."""
    model = entropy_hybrid(lm_dir, entropy_threshold=0.0, entropy_mode=mode)
    s = scores(model, ids)[:, 1:].flatten().sort(descending=True).values
    k = int(fraction * s.numel())
    window = s[max(1, k - 10):k + 10]
    gaps = window[:-1] - window[1:]
    i = int(gaps.argmax())
    model.backbone.router.threshold = float(window[i] + window[i + 1]) / 2
    return model, float(gaps[i]) / 2


@pytest.mark.parametrize("mode", ["global", "relative"])
def test_boundaries_and_logits_ignore_future_bytes(lm_dir, mode):
    ids = text_ids(3, 40, seed=1)
    model, _ = hybrid_in_a_gap(lm_dir, mode, ids)
    with torch.no_grad():
        out = model(ids)
        for t in (5, 17, 31):
            changed = ids.clone()
            changed[:, t:] = torch.randint(0, 256, changed[:, t:].shape, generator=torch.Generator().manual_seed(t))
            other = model(changed)
            assert torch.equal(other.aux["boundary_mask"][0][:, : t + 1], out.aux["boundary_mask"][0][:, : t + 1])
            assert (other.logits[:, :t] - out.logits[:, :t]).abs().max().item() < 1e-10
            assert not torch.equal(other.aux["boundary_mask"][0][:, t + 1:], out.aux["boundary_mask"][0][:, t + 1:])


@pytest.mark.parametrize("mode", ["global", "relative"])
def test_steps_and_pieces_equal_forward(lm_dir, mode):
    ids = text_ids(3, 37, seed=5)
    model, margin = hybrid_in_a_gap(lm_dir, mode, ids)
    assert margin > 1e-5, margin
    with torch.no_grad():
        out = model(ids)
        mask = out.aux["boundary_mask"][0]
        assert not torch.equal(mask[0], mask[1]) and not torch.equal(mask[1], mask[2])
        assert 0.1 < mask.float().mean() < 0.7

        state = model.allocate_state(3)
        logits, seen = [], []
        for t in range(ids.shape[1]):
            before = state.routing.chunks.clone()
            step_logits, state = model.step(ids[:, t], state)
            logits.append(step_logits)
            seen.append(state.routing.chunks - before)
        assert torch.equal(torch.stack(seen, 1).bool(), mask)
        assert (torch.stack(logits, 1) - out.logits).abs().max().item() < 1e-8

        for cuts in ([1], [14, 29], [9, 10, 23]):
            state, pieces = model.allocate_state(3), []
            for a, b in zip([0, *cuts], [*cuts, ids.shape[1]]):
                piece, state = model.prefill(ids[:, a:b], state)
                pieces.append(piece)
            assert (torch.cat(pieces, 1) - out.logits).abs().max().item() < 1e-8, cuts
            tail, _ = model.step(ids[:, -1], model.prefill(ids[:, :-1])[1])
            assert (tail - out.logits[:, -1]).abs().max().item() < 1e-8


def test_decoding_state_is_flat_and_holds_the_entropy_lm(lm_dir):
    model = entropy_hybrid(lm_dir)
    state = model.allocate_state(2)
    size = tree_nbytes(state)
    assert tree_nbytes(state.routing.entropy.lm) > 0
    ids = text_ids(2, 300, seed=2)
    with torch.no_grad():
        for t in range(ids.shape[1]):
            _, state = model.step(ids[:, t], state)
            assert tree_nbytes(state) == size
        _, state = model.prefill(ids, state)
    assert tree_nbytes(state) == size
    assert int(state.routing.pos[0]) == 600


def test_the_entropy_lm_stays_frozen_and_float32(lm_dir):
    model = entropy_hybrid(lm_dir)  # .double() on the whole model
    router = model.backbone.router
    pretrained = {k: v.clone() for k, v in router.lm.state_dict().items()}
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in router.lm.parameters())
    assert router.lm.training is False
    model.train()
    assert router.lm.training is False
    model.init_weights()
    assert all(torch.equal(v, pretrained[k]) for k, v in router.lm.state_dict().items())
    groups = model.optimizer_groups(0.1, 1e-3)
    trainable = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in trainable for p in router.lm.parameters())


def test_flops_per_byte_add_the_entropy_lms_forward(lm_dir):
    model = entropy_hybrid(lm_dir)
    lm = model.backbone.router.lm
    space = build_model(model.config.__class__.from_dict({
        **model.config.to_dict(), "chunking": ["space"], "target_compression": [2.5],
        "entropy_model": None, "entropy_threshold": None,
    }))
    want = space.flops_per_byte(64, [2.5]) + lm.flops_per_byte(64) / 3
    assert model.flops_per_byte(64, [2.5]) == pytest.approx(want, rel=1e-12)
    assert lm.flops_per_byte(64) > 0


def test_two_stages_entropy_outside_dynamic_inside_decode_as_forward(lm_dir):
    ids = text_ids(3, 29, seed=8)
    model = entropy_hybrid(lm_dir, stages=2, entropy_threshold=0.0)
    s = scores(model, ids)[:, 1:].flatten().sort(descending=True).values
    k = s.numel() // 2
    model.backbone.router.threshold = float(s[k] + s[k + 1]) / 2
    with torch.no_grad():
        out = model(ids)
        assert out.aux["boundary_mask"][1].any()
        state, logits = model.allocate_state(3), []
        for t in range(ids.shape[1]):
            step_logits, state = model.step(ids[:, t], state)
            logits.append(step_logits)
        assert (torch.stack(logits, 1) - out.logits).abs().max().item() < 1e-8
        pre, state = model.prefill(ids[:, :11])
        rest, _ = model.prefill(ids[:, 11:], state)
        assert (torch.cat([pre, rest], 1) - out.logits).abs().max().item() < 1e-8
