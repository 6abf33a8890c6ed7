"""GLA (g), Gated DeltaNet (d) and RWKV-7 (w) inside the full 1-stage hybrid (in the encoder
and, with their MLP, in the main network) and on their own: causal, decoding equals the forward
pass for a batch of 3 whose rows chunk at different bytes, prefill in pieces equals the forward
pass, the decoding state does not grow with the context, and a bf16 model trains without NaN."""

import pytest
import torch
import torch.nn.functional as F
from hybrid_helpers import text_ids, tiny_config
from test_causality import check_causal
from test_decoding import stage_chunks
from test_families import train

from bytelm.config import ModelConfig
from bytelm.layers.state import tree_nbytes
from bytelm.models import build_model

LETTERS = ["g", "d", "w"]
GATED = dict(gla_heads=2, gdn_heads=2, gdn_expand_v=2, rwkv_heads=2)


def gated_model(letter: str, seed: int = 0, dtype=torch.float64):
    """Tiny 1-stage hybrid with `letter` in the encoder and (upper case) in the main network."""
    torch.manual_seed(seed)
    cfg = tiny_config(layout=[f"{letter}1m1", [f"{letter.upper()}1S1"], "s1m1"], **GATED)
    return build_model(cfg).to(dtype)


@pytest.mark.parametrize("letter", LETTERS)
def test_causal_at_init_and_after_training(letter):
    model = gated_model(letter)
    ids = text_ids(2, 40, seed=1)
    check_causal(model, ids)
    check_causal(train(model, 3, seed=10), ids)


@pytest.mark.parametrize("letter", LETTERS)
def test_steps_and_pieces_equal_forward(letter):
    model = train(gated_model(letter, seed=3), 2, seed=20, lr=2e-3)
    ids = text_ids(3, 37, seed=5)
    with torch.no_grad():
        out = model(ids)
        mask = out.aux["boundary_mask"][0]
        assert not torch.equal(mask[0], mask[1]) and not torch.equal(mask[1], mask[2])
        state, logits, fired = model.allocate_state(3), [], []
        for t in range(ids.shape[1]):
            before = stage_chunks(state)[0]
            step_logits, state = model.step(ids[:, t], state)
            logits.append(step_logits)
            fired.append(stage_chunks(state)[0] - before)
        assert torch.equal(torch.stack(fired, 1).bool(), mask)
        assert (torch.stack(logits, 1) - out.logits).abs().max().item() < 1e-8

        pre, state = model.prefill(ids[:, :23])
        rest = []
        for t in range(23, ids.shape[1]):
            step_logits, state = model.step(ids[:, t], state)
            rest.append(step_logits[:, None])
        assert (torch.cat([pre, *rest], 1) - out.logits).abs().max().item() < 1e-8

        first, mid = model.prefill(ids[:, :14])
        second, _ = model.prefill(ids[:, 14:], mid)
        assert (torch.cat([first, second], 1) - out.logits).abs().max().item() < 1e-8


@pytest.mark.parametrize("letter", LETTERS)
def test_state_bytes_do_not_grow(letter):
    model = gated_model(letter, dtype=torch.float32).eval()
    ids = text_ids(3, 4096, seed=7)
    with torch.no_grad():
        state = model.allocate_state(3)
        for t in range(64):
            _, state = model.step(ids[:, t], state)
        after_64 = tree_nbytes(state)
        _, state = model.prefill(ids[:, 64:4032], state)
        for t in range(4032, 4096):
            _, state = model.step(ids[:, t], state)
    assert tree_nbytes(state) == after_64


@pytest.mark.parametrize("letter", LETTERS)
def test_family_alone_without_stages(letter):
    torch.manual_seed(0)
    cfg = ModelConfig(layout=[f"{letter.upper()}2"], d_model=[16], d_intermediate=[32], n_heads=[2],
                      n_kv_heads=[2], window=[4], sinks=[0], chunking=[], target_compression=[],
                      ssm_chunk_size=8, **GATED)
    model = build_model(cfg).double()
    ids = text_ids(2, 19, seed=9)
    with torch.no_grad():
        ref = model(ids).logits
        first, state = model.prefill(ids[:, :6])
        rest = []
        for t in range(6, 19):
            step_logits, state = model.step(ids[:, t], state)
            rest.append(step_logits[:, None])
    assert (torch.cat([first, *rest], 1) - ref).abs().max().item() < 1e-8


@pytest.mark.parametrize("letter", LETTERS)
def test_bf16_model_trains_200_steps_without_nan(letter):
    """Parameters, activations and optimizer in bf16 (the recurrences compute in float32)."""
    model = gated_model(letter, seed=4, dtype=torch.bfloat16).train()
    opt = torch.optim.AdamW(model.optimizer_groups(0.1, 1e-2))
    losses = []
    for step in range(200):
        batch = text_ids(2, 33, seed=100 + step)
        out = model(batch[:, :-1])
        loss = F.cross_entropy(out.logits.flatten(0, 1).float(), batch[:, 1:].flatten())
        opt.zero_grad()
        (loss + out.aux["ratio_loss"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 - 0.5
