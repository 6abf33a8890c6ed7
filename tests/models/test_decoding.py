"""Decoding equals the forward pass: per-byte steps, prefill + steps, prefill in pieces."""

import pytest
import torch
from hybrid_helpers import text_ids, tiny_model

from bytelm.config import ModelConfig
from bytelm.models import build_model
from bytelm.models.stage import StageState

CASES = [(1, "dynamic"), (2, "dynamic"), (2, "fixed:3")]


def stage_chunks(state) -> list[torch.Tensor]:
    """Chunk counters [B] of every stage, outermost first."""
    out = []
    while isinstance(state, StageState):
        out.append(state.routing.chunks.clone())
        state = state.inner
    return out


def trained(stages, chunking):
    """A model moved off its initial weights so that boundaries are not at their init values."""
    model = tiny_model(stages=stages, chunking=chunking, seed=3)
    opt = torch.optim.AdamW(model.optimizer_groups(0.0, 2e-2))
    for step in range(3):
        batch = text_ids(4, 33, seed=20 + step)
        out = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad()
        (loss + out.aux["ratio_loss"]).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("stages,chunking", CASES, ids=[f"{s}stage-{c}" for s, c in CASES])
def test_steps_equal_forward(stages, chunking):
    model = trained(stages, chunking)
    ids = text_ids(3, 37, seed=5)
    with torch.no_grad():
        out = model(ids)
        masks = out.aux["boundary_mask"]
        margin = min((p - 0.5).abs().min().item() for p in out.aux["boundary_probs"])
        print(f"smallest |p - 0.5| = {margin:.3g}")
        if chunking == "dynamic":
            assert margin > 1e-9
            assert not torch.equal(masks[0][0], masks[0][1])  # rows chunk at different bytes

        state = model.allocate_state(3)
        seen = [[] for _ in masks]  # per stage: the step's boundary at each position of that level
        logits = []
        for t in range(ids.shape[1]):
            before = stage_chunks(state)
            step_logits, state = model.step(ids[:, t], state)
            logits.append(step_logits)
            for level, (a, b) in enumerate(zip(before, stage_chunks(state))):
                seen[level].append(b - a)
        # Boundaries first: stage s's positions are the bytes where every outer stage fired.
        fired = torch.ones(3, ids.shape[1], dtype=torch.bool)
        for level, mask in enumerate(masks):
            step_b = torch.stack(seen[level], 1).bool()  # [B, T] per byte
            for row in range(3):
                got = step_b[row][fired[row]]
                want = mask[row, : int(fired[row].sum())]
                assert torch.equal(got, want), f"stage {level} row {row} boundaries differ"
            fired = fired & step_b
        assert (torch.stack(logits, 1) - out.logits).abs().max().item() < 1e-8

        for k in (1, 23):
            pre, state = model.prefill(ids[:, :k])
            rest = []
            for t in range(k, ids.shape[1]):
                step_logits, state = model.step(ids[:, t], state)
                rest.append(step_logits)
            got = torch.cat([pre, *[r[:, None] for r in rest]], 1)
            assert (got - out.logits).abs().max().item() < 1e-8

        one, one_state = model.prefill(ids)
        first, mid = model.prefill(ids[:, :14])
        second, two_state = model.prefill(ids[:, 14:], mid)
        assert (torch.cat([first, second], 1) - one).abs().max().item() < 1e-8
        assert (one - out.logits).abs().max().item() < 1e-8
        nxt = torch.tensor([32, 101, 46])
        a, _ = model.step(nxt, one_state)
        b, _ = model.step(nxt, two_state)
        assert (a - b).abs().max().item() < 1e-8


def test_single_network_layout():
    """A layout without stages is one network: prefill, pieces and steps still match."""
    torch.manual_seed(0)
    cfg = ModelConfig(layout=["M1S1T1"], d_model=[16], d_intermediate=[32], n_heads=[2],
                      n_kv_heads=[1], window=[4], sinks=[1], chunking=[], target_compression=[],
                      ssm_d_state=8, ssm_headdim=8, ssm_chunk_size=8)
    model = build_model(cfg).double()
    ids = text_ids(2, 15, seed=9)
    with torch.no_grad():
        ref = model(ids)
        assert ref.aux["compression"] == [] and ref.aux["ratio_loss"].item() == 0.0
        first, state = model.prefill(ids[:, :6])
        rest = []
        for t in range(6, 15):
            step_logits, state = model.step(ids[:, t], state)
            rest.append(step_logits[:, None])
        assert (torch.cat([first, *rest], 1) - ref.logits).abs().max().item() < 1e-8
