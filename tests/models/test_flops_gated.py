"""Analytic FLOPs of the gated families (g, d, w) against torch's FLOP counter on the reference
path: each mixer alone, forward (projections as mm, the chunked algorithm's batched products as
bmm), and the projections of a whole fixed:3 hybrid built from one family, forward + backward."""

import pytest
import torch
from hybrid_helpers import tiny_config
from torch.utils.flop_counter import FlopCounterMode

from bytelm.config import ModelConfig
from bytelm.layers.network import make_block
from bytelm.models import build_model
from bytelm.models.flops import hybrid_flops_breakdown
from bytelm.models.flops_gated import channel_mix_flops, gated_flops, solve_flops
from bytelm.models.stage import level_spec

GATED = dict(gla_heads=2, gdn_heads=2, gdn_expand_v=2, rwkv_heads=2)


def counted(fn, positions: int, backward: bool = True) -> dict:
    """FLOPs per position by aten op of fn() (and the backward of its sum)."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
        if backward:
            out.sum().backward()
    return {op: n / positions for op, n in counter.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("letter", ["g", "d", "w", "W"])
def test_mixer_flops_match_counter(letter):
    """Forward: projections (mm) and the chunked algorithm's batched products (bmm)."""
    cfg = ModelConfig(layout=[f"{letter}1"], d_model=[48], d_intermediate=[96], n_heads=[2],
                      n_kv_heads=[2], window=[4], sinks=[0], chunking=[], target_compression=[],
                      ssm_chunk_size=16, **GATED)
    torch.manual_seed(0)
    block = make_block(letter, level_spec(cfg, 0))
    batch, seq_len = 2, 48  # three whole chunks of 16
    x = torch.randn(batch, seq_len, 48)
    with torch.no_grad():
        counts = counted(lambda: block(x)[0], batch * seq_len, backward=False)
    analytic = gated_flops(cfg, 0, letter.lower(), seq_len)
    linear = analytic["linear"] + (channel_mix_flops(cfg, 0) if letter == "W" else 0)
    matmul = counts.get(torch.ops.aten.mm, 0) + counts.get(torch.ops.aten.addmm, 0)
    bmm = counts.get(torch.ops.aten.bmm, 0)
    # The counter has no formula for the delta rules' triangular solve.
    scan = analytic["scan"] - solve_flops(cfg, 0, letter.lower(), seq_len)
    print(f"{letter}: mm {matmul:.0f} vs {linear:.0f}, bmm {bmm:.0f} vs {scan:.0f}")
    assert matmul == pytest.approx(linear, rel=0.02)
    assert bmm == pytest.approx(scan, rel=0.02)


@pytest.mark.parametrize("letter", ["g", "d", "w"])
def test_hybrid_projection_flops_match_counter(letter):
    cfg = tiny_config(chunking="fixed:3", layout=[f"{letter}2", [f"{letter.upper()}2"], f"{letter}1"],
                      d_model=[32, 48], ssm_chunk_size=16, **GATED)
    torch.manual_seed(0)
    model = build_model(cfg)
    seq_len, batch = 144, 2  # divisible by 3: compression is exact
    counts = counted(lambda: model(torch.randint(0, 256, (batch, seq_len))).logits, batch * seq_len)
    matmul = counts.get(torch.ops.aten.mm, 0) + counts.get(torch.ops.aten.addmm, 0)
    assert matmul == pytest.approx(hybrid_flops_breakdown(cfg, seq_len)["linear"], rel=0.02)


def test_gated_flops_rejects_other_letters():
    with pytest.raises(ValueError, match="not one of"):
        gated_flops(tiny_config(), 0, "m", 64)
