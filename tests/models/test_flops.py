"""Analytic FLOPs per byte against independent counts, category by category.

- linear: exactly torch's FLOP counter on every matrix product (`aten.mm`: each projection,
  the routing W_q/W_k, the encoder-decoder residual and the head), forward + backward;
- attention: the (query, key) pairs of the real window mask with sinks, built here position by
  position for the length each attention layer actually saw;
- scan: the chunked algorithm's products (C B^T per group, scores x per head, chunk states,
  read-out, state passing) for the length each Mamba-2 layer and each dechunk actually saw,
  with the sizes checked against the counter on the reference scan itself;
- conv: the depthwise taps of every Mamba-2 layer.

Lengths come from hooks on the built modules (not from the config), so a term dropped, a level
scaled wrongly or a window ignored in `bytelm.models.flops` shows up as a mismatch.
"""

from __future__ import annotations

import pytest
import torch
from hybrid_helpers import text_ids, tiny_config
from torch.utils.flop_counter import FlopCounterMode

from bytelm.kernels.ssd.naive import chunk_scan
from bytelm.layers.attention import Attention
from bytelm.layers.ssm import Mamba2
from bytelm.models import build_model
from bytelm.models.flops import hybrid_flops_breakdown, mean_keys, ssd_scan_flops
from bytelm.models.stage import Stage


def test_mean_keys():
    assert mean_keys(4, None) == 2.5
    assert mean_keys(6, 2, 0) == (1 + 2 * 5) / 6
    assert mean_keys(6, 2, 1) == (1 + 2 + 3 * 4) / 6  # position t >= 2 also sees sink 0


def mask_pairs(length: int, window: int | None, sinks: int) -> int:
    """(query, key) pairs of the causal mask: full, or window keys t-w+1..t plus sinks 0..s-1."""
    t = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    seen = j <= t
    if window is not None:
        seen &= (t - j < window) | (j < sinks)
    return int(seen.sum())


def scan_einsum_flops(length: int, chunk: int, heads: int, groups: int, d_state: int, headdim: int) -> float:
    """Forward FLOPs of the chunked scan over `length` positions, from its einsum sizes: the
    causal halves of the two intra-chunk products, chunk states, read-out, linear state passing."""
    q = min(chunk, length)
    pairs = q * (q + 1) // 2
    per_chunk = (
        2 * pairs * d_state * groups  # C B^T, once per group
        + 2 * pairs * headdim * heads  # (C B^T o L) x
        + 2 * q * headdim * d_state * heads  # chunk states B^T (decay x)
        + 2 * q * d_state * headdim * heads  # read-out C h
        + 2 * headdim * d_state * heads  # state passed on to the next chunk
    )
    return per_chunk * length / q


@pytest.mark.parametrize("chunks", [1, 3, 5])
def test_scan_sizes_are_what_the_reference_runs(chunks: int):
    """The counter on the reference scan equals the einsum sizes above once its full (not causal)
    intra-chunk squares are counted as it runs them, and less the chunk-to-chunk state passing,
    which the reference runs as elementwise multiply-adds that the counter does not see."""
    b, q, h, g, n, p = 2, 8, 4, 2, 6, 5
    length = chunks * q
    x, dt = torch.randn(b, length, h, p), torch.rand(b, length, h)
    B, C = torch.randn(b, length, g, n), torch.randn(b, length, g, n)
    with FlopCounterMode(display=False) as counter:
        chunk_scan(x, dt, -torch.rand(h), B, C, q)
    measured = counter.get_total_flops() / b
    analytic = scan_einsum_flops(length, q, h, g, n, p)
    square_extra = 2 * (q * q - q * (q + 1) // 2) * (n * g + p * h) * chunks
    elementwise_passing = 2 * h * p * n * chunks
    assert measured == analytic + square_extra - elementwise_passing
    assert ssd_scan_flops(q, h, g, n, p) * length == pytest.approx(analytic, rel=1e-12)


def independent_count(model, ids: torch.Tensor) -> tuple[dict[str, float], list[float]]:
    """Forward + backward FLOPs per byte by category, counted from the modules and the lengths
    they saw in one forward pass of ids [1, T]; and the compression reached per stage."""
    seen: list[tuple[torch.nn.Module, int]] = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].shape[1])))
        for m in model.modules() if isinstance(m, (Mamba2, Attention))
    ]
    with FlopCounterMode(display=False) as counter:
        out = model(ids)
        out.logits.sum().backward()
    for hook in hooks:
        hook.remove()
    seq_len = ids.shape[1]
    fwd = dict.fromkeys(("conv", "scan", "attention"), 0.0)
    for mod, length in seen:
        if isinstance(mod, Mamba2):
            fwd["conv"] += 2 * mod.conv_dim * mod.d_conv * length
            fwd["scan"] += scan_einsum_flops(
                length, mod.chunk_size, mod.nheads, mod.ngroups, mod.d_state, mod.headdim
            )
        else:
            pairs = mask_pairs(length, mod.window, mod.sinks)
            fwd["attention"] += 4 * mod.n_heads * mod.head_dim * pairs  # Q K^T and P V
    counts = [int(b.sum()) for b in out.aux["boundary_mask"]]
    stages = [m for m in model.modules() if isinstance(m, Stage)]
    for stage, n_chunks in zip(stages, counts):  # dechunk: the EMA scan over the chunks
        fwd["scan"] += scan_einsum_flops(n_chunks, stage.chunk_size, 1, 1, 1, stage.d_model)
    total = {key: 3 * value / seq_len for key, value in fwd.items()}
    total["linear"] = counter.get_flop_counts()["Global"][torch.ops.aten.mm] / seq_len
    outer = [seq_len] + counts
    return total, [outer[i] / outer[i + 1] for i in range(len(counts))]


CASES = [
    (1, "dynamic", "short"), (1, "dynamic", "long"), (1, "fixed:3", "short"),
    (2, "dynamic", "short"), (2, "dynamic", "long"), (2, "space", "short"),
]


@pytest.mark.parametrize("stages,chunking,window", CASES, ids=[f"{s}stage-{c}-{w}" for s, c, w in CASES])
def test_every_category_matches_an_independent_count(stages: int, chunking: str, window: str):
    overrides = {}
    if window == "long":  # every window longer than the sequence of its level
        overrides["window"] = [400] * (stages + 1)
    cfg = tiny_config(stages=stages, chunking=chunking, **overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    ids = text_ids(1, 144, seed=stages)
    counted, compression = independent_count(model, ids)
    analytic = hybrid_flops_breakdown(cfg, ids.shape[1], compression)
    assert set(analytic) == set(counted)
    for key in counted:
        assert analytic[key] == pytest.approx(counted[key], rel=1e-9), key
    assert counted["attention"] > 0 and counted["scan"] > 0
    assert model.flops_per_byte(ids.shape[1], compression) == pytest.approx(sum(counted.values()), rel=1e-9)


def test_windows_shorter_than_the_sequence_cost_less():
    cfg = tiny_config(stages=1, chunking="fixed:3")
    wide = tiny_config(stages=1, chunking="fixed:3", window=[400, 400])
    assert hybrid_flops_breakdown(cfg, 144)["attention"] < hybrid_flops_breakdown(wide, 144)["attention"]
