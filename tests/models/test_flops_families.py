"""Analytic FLOPs of the recurrent families (r, l, c, e) against torch's FLOP counter on a
fixed:3 hybrid built from one family (known compression, so the count is exact per byte)."""

import pytest
import torch
from hybrid_helpers import tiny_config
from torch.utils.flop_counter import FlopCounterMode

from bytelm.models import build_model
from bytelm.models.flops import family_flops, hybrid_flops_breakdown

FAMILY = dict(rec_heads=2, rec_expand=2, s4d_d_state=4, s4d_headdim=4, mega_ema_dim=4,
              mega_headdim=4, mega_window=[48, 24])


@pytest.mark.parametrize("letter", ["r", "l", "c", "e"])
def test_family_flops_match_counter(letter):
    cfg = tiny_config(chunking="fixed:3", layout=[f"{letter}2", [f"{letter.upper()}2"], f"{letter}1"],
                      d_model=[32, 48], **FAMILY)
    torch.manual_seed(0)
    model = build_model(cfg)
    seq_len, batch = 144, 2  # divisible by 3: compression is exact
    ids = torch.randint(0, 256, (batch, seq_len))
    with FlopCounterMode(display=False) as counter:
        model(ids).logits.sum().backward()
    counts = {op: n / (batch * seq_len) for op, n in counter.get_flop_counts()["Global"].items()}
    analytic = hybrid_flops_breakdown(cfg, seq_len)
    matmul = counts.get(torch.ops.aten.mm, 0) + counts.get(torch.ops.aten.addmm, 0)  # projections, head
    print(f"{letter}: matmul FLOPs per byte counted {matmul:.0f}, analytic {analytic['linear']:.0f}")
    assert matmul == pytest.approx(analytic["linear"], rel=0.02)
    # The counter multiplies whole chunk squares (and the padding chunk) where the analytic
    # scan takes the causal halves, so scan + attention sit well inside the batched products.
    ratio = (analytic["scan"] + analytic["attention"]) / counts[torch.ops.aten.bmm]
    print(f"{letter}: scan + attention over the counter's bmm = {ratio:.2f}")
    assert 0.45 < ratio < 0.9


def test_family_flops_rejects_other_letters():
    with pytest.raises(ValueError, match="not one of"):
        family_flops(tiny_config(), 0, "m", 64)
