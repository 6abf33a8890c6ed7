"""Analytic FLOPs of the recurrent families (r, l, c, e) against torch's FLOP counter.

- linear: on a fixed:3 hybrid built from one family (known compression, so the count is exact
  per byte), the counter's matrix products (`aten.mm`, `aten.addmm`) equal the analytic linear
  term within 2%;
- scan and attention: on each family's layer alone, the counter's batched products equal the
  analytic terms within 2% once the work the reference path does beyond them is added, each
  part from the reference's own shapes: whole intra-chunk squares where the count takes causal
  halves, less the SSD reference's chunk-to-chunk state passing (elementwise multiply-adds, which
  the counter does not see), dense chunk-to-chunk passing in the LTI convolution where the count
  takes one step per chunk, and the sliding window's [window, 2 window] key blocks where it takes
  the keys each query sees.
"""

import pytest
import torch
from hybrid_helpers import tiny_config
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bytelm.layers.network import make_mixer
from bytelm.models import build_model
from bytelm.models.flops import family_flops, hybrid_flops_breakdown, mean_keys
from bytelm.models.stage import level_spec

FAMILY = dict(rec_heads=2, rec_expand=2, s4d_d_state=4, s4d_headdim=4, mega_ema_dim=4,
              mega_headdim=4, mega_window=[48, 24])


@pytest.mark.parametrize("letter", ["r", "l", "c", "e"])
def test_family_linear_flops_match_counter(letter):
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
    assert matmul == pytest.approx(analytic["linear"], rel=0.02)


def scan_extra(length: int, chunk: int, heads: int, p: int, n: int) -> float:
    """What the counter sees of the reference `chunk_scan` (one group per head) beyond the
    analytic count: whole [Q, Q] squares for C B^T and scores x, less the state passing (one
    elementwise multiply-add of each state per chunk, invisible to the counter)."""
    chunks = length // chunk
    square = 2 * (chunk * chunk - chunk * (chunk + 1) // 2) * (n + p) * heads * chunks
    return square - 2 * heads * p * n * chunks


def lti_extra(length: int, chunk: int, d_model: int, n: int) -> float:
    """What `lti_conv` runs beyond the analytic count: whole [Q, Q] Toeplitz squares and dense
    [chunks, chunks] state passing."""
    chunks = length // chunk
    square = 2 * (chunk * chunk - chunk * (chunk + 1) // 2) * d_model * chunks
    return square + 2 * chunks * chunks * d_model * n - 2 * chunks * d_model * n


def window_extra(length: int, window: int, dim: int) -> float:
    """What the reference sliding-window attention (one head of `dim`) runs beyond the keys each
    query sees: QK^T and PV over [window, 2 window] blocks."""
    return 8 * window * dim * length - 4 * dim * mean_keys(length, window) * length


@pytest.mark.parametrize("letter", ["r", "l", "c", "e"])
def test_family_scan_flops_match_counter(letter):
    """A family's layer alone: analytic scan + attention + the reference's extra work equals the
    counter's batched products, forward, within 2%."""
    cfg = tiny_config(layout=[f"{letter}1", [f"{letter}1"], f"{letter}1"], d_model=[32, 48],
                      ssm_chunk_size=16, **FAMILY)
    spec = level_spec(cfg, 0)
    torch.manual_seed(0)
    mixer = make_mixer(letter, spec)
    length = 96  # a whole number of chunks and of attention windows
    # The fused CPU attention kernel has no FLOP formula; its math form runs the same products.
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        mixer(torch.randn(1, length, spec.d_model))
    counts = counter.get_flop_counts()["Global"]
    batched = counts.get(torch.ops.aten.bmm, 0)
    linear = counts.get(torch.ops.aten.mm, 0) + counts.get(torch.ops.aten.addmm, 0)
    analytic = family_flops(cfg, 0, letter, length)
    d = spec.d_model
    if letter in "rl":
        h = spec.rec_heads
        p = spec.rec_expand * d // h + (letter == "l")
        extra = scan_extra(length, mixer.chunk_size, h, p, d // h)
    else:
        n = spec.s4d_d_state if letter == "c" else spec.mega_ema_dim
        extra = lti_extra(length, mixer.chunk_size, d, n)
        if letter == "e":
            extra += window_extra(length, spec.mega_window, d)
    expected = (analytic["scan"] + analytic.get("attention", 0.0)) * length + extra
    print(f"{letter}: batched products counted {batched:.0f}, analytic + reference extras {expected:.0f}")
    assert batched == pytest.approx(expected, rel=0.02)
    assert linear == pytest.approx(analytic["linear"] * length, rel=0.02)


def test_family_flops_rejects_other_letters():
    with pytest.raises(ValueError, match="not one of"):
        family_flops(tiny_config(), 0, "m", 64)
