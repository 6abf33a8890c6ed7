"""The tokenized baseline: causal, cache-consistent, and counted the way the recipes assume."""

import pytest
import torch

from bytelm.config import BaselineConfig
from bytelm.models import build_model
from bytelm.models.baseline import BaselineLM


def _config(**overrides) -> BaselineConfig:
    base = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                d_intermediate=64, max_seq_len=64, bytes_per_token=3.5)
    return BaselineConfig(**{**base, **overrides})


@pytest.fixture
def model() -> BaselineLM:
    torch.manual_seed(0)
    return build_model(_config()).eval()


def test_build_model_returns_baseline_with_no_aux(model):
    assert isinstance(model, BaselineLM)
    out = model(torch.randint(0, 97, (2, 13)))
    assert out.logits.shape == (2, 13, 97)
    assert out.aux == {}


def test_future_tokens_do_not_change_past_logits(model):
    ids = torch.randint(0, 97, (2, 31))
    changed = ids.clone()
    changed[:, 20:] = torch.randint(0, 97, (2, 11))
    a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3


@pytest.mark.parametrize("split", [1, 7, 18])
def test_prefill_then_steps_match_forward(model, split):
    ids = torch.randint(0, 97, (2, 23))
    full = model(ids).logits  # [2, 23, V]
    logits, state = model.prefill(ids[:, :split])
    torch.testing.assert_close(logits, full[:, :split], atol=1e-5, rtol=1e-5)
    for t in range(split, 23):
        logits, state = model.step(ids[:, t], state)
        torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-5)
    assert state.pos == 23


def test_chunked_prefill_matches_forward(model):
    ids = torch.randint(0, 97, (3, 29))
    full = model(ids).logits
    _, state = model.prefill(ids[:, :11])
    logits, state = model.prefill(ids[:, 11:], state)
    torch.testing.assert_close(logits, full[:, 11:], atol=1e-5, rtol=1e-5)


def test_full_cache_and_long_input_are_refused(model):
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    state = model.allocate_state(1, max_len=4)
    with pytest.raises(ValueError, match="context is full"):
        model.prefill(torch.zeros(1, 5, dtype=torch.long), state)


def test_parameter_counts(model):
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total
    assert model.num_parameters(exclude_embeddings=True) == total - 97 * 32  # the head stays
    # per layer: wq 32*32, wkv 32*2*2*8, wo 32*32, MLP 3*32*64, two norms; final norm; head
    per_layer = 32 * 32 + 32 * 32 + 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert model.num_parameters(exclude_embeddings=True) == 2 * per_layer + 32 + 97 * 32


def test_flops_per_byte_by_hand(model):
    seq = 48  # tokens: windows of 168 bytes at 3.5 bytes per token
    # forward per token: 2 * (layers * (proj + mlp + attention) + head), backward twice that
    proj = 32 * 32 + 32 * 32 + 32 * 32
    attn = 2 * 32 * (seq + 1) / 2
    fwd = 2 * (2 * (proj + 3 * 32 * 64 + attn) + 32 * 97)
    assert model.flops_per_byte(168) == pytest.approx(3 * fwd / 3.5)
    assert model.flops_per_byte(168, compression=7.0) == pytest.approx(3 * fwd / 7.0)


def test_optimizer_groups_cover_every_parameter_once(model):
    groups = model.optimizer_groups(weight_decay=0.1, lr=1e-3)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    decay = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert id(model.embed.weight) not in decay and id(model.head.weight) in decay
    assert all(p.dim() == 2 for p in groups[0]["params"])
