"""Decode steps compiled ahead of time (bytelm.models.exported) answer like the eager step:
the state codec round-trips, the hybrid's artifacts (rows that agree and rows that disagree,
where the inner graph runs masked) and the baseline's (its position a dynamic size) give the
eager logits byte by byte, for states they made and for copies they did not; a growing state
is left to the jit step."""

from __future__ import annotations

import pytest
import torch
from hybrid_helpers import text_ids, tiny_config, tiny_model

from bytelm.config import BaselineConfig
from bytelm.layers.state import tree_leaves, tree_map
from bytelm.models import build_model
from bytelm.models.exported import ExportedBaselineStep, ExportedHybridStep, TreeCodec


def test_tree_codec_round_trips_a_state():
    model = build_model(tiny_config()).eval()
    state = model.allocate_state(2)
    codec = TreeCodec(state)
    leaves = codec.flatten(state)
    assert [id(t) for t in leaves] == [id(t) for t in tree_leaves(state)] and codec.size == len(leaves)
    rebuilt = codec.unflatten(leaves)
    assert type(rebuilt) is type(state) and type(rebuilt.routing) is type(state.routing)
    assert [id(t) for t in tree_leaves(rebuilt)] == [id(t) for t in leaves]
    assert rebuilt.routing.entropy is state.routing.entropy  # a constant of the structure
    assert TreeCodec(model.allocate_state(3)).key == codec.key  # shapes are not structure
    shorter = model.allocate_state(2)
    shorter.encoder = shorter.encoder[:-1]
    assert TreeCodec(shorter).key != codec.key


def decode_both(model, step, ids: torch.Tensor, prompt: int, copy_at: int) -> None:
    """Eager and `step` side by side over ids [B, T] after `prompt` ids; at `copy_at` the
    compiled side continues from a copy of its state (a state its step did not make)."""
    with torch.inference_mode():
        _, eager = model.prefill(ids[:, :prompt], model.allocate_state(ids.shape[0], max_len=ids.shape[1]))
        _, compiled = model.prefill(ids[:, :prompt], model.allocate_state(ids.shape[0], max_len=ids.shape[1]))
        for t in range(prompt, ids.shape[1]):
            if t == copy_at:
                compiled = tree_map(torch.clone, compiled)
            logits, eager = model.step(ids[:, t], eager)
            logits_c, compiled = step(ids[:, t], compiled)
            torch.testing.assert_close(logits_c, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_exported_hybrid_step_equals_eager():
    """Two rows whose bytes start chunks in both, in neither and in one: the outer artifact
    alone, the inner one, and the masked inner one."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    step = ExportedHybridStep(model)
    ids = text_ids(2, 48, seed=3)  # [2, 48]
    starts = set()
    with torch.inference_mode():  # the rows' chunk starts along the way
        _, state = model.prefill(ids[:, :16], model.allocate_state(2))
        for t in range(16, 48):
            before = state.routing.chunks.clone()
            state = model.step(ids[:, t], state)[1]
            starts.add(tuple((state.routing.chunks - before).tolist()))
    assert {(0, 0), (1, 1)} < starts, f"the rows must start chunks together, apart and not at all: {starts}"
    decode_both(model, step, ids, 16, copy_at=30)
    assert step._jit is None, "a flat state decodes ahead of time"
    (graphs,) = step._graphs.values()  # the copy reused the artifacts
    assert graphs.masked is not None


@pytest.mark.slow
def test_exported_baseline_step_equals_eager():
    torch.manual_seed(0)
    cfg = BaselineConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_intermediate=64, max_seq_len=64, bytes_per_token=3.5)
    model = build_model(cfg).eval()
    step = ExportedBaselineStep(model)
    ids = text_ids(2, 24, seed=4) % cfg.vocab_size  # [2, 24]: positions 1 .. 23 of a 24-slot cache
    decode_both(model, step, ids, 1, copy_at=12)  # positions 1 and 23 are the eager step's
    assert len(step._runners) == 1


def test_exported_hybrid_step_leaves_a_growing_state_to_jit(capsys):
    """Global attention's cache grows with every chunk, so no artifact fits the state it returns:
    the step finds that out before compiling anything and decodes with the jit step instead
    (here the eager step stands in for it), with a note."""
    model = tiny_model(stages=2).eval()
    assert "T" in str(model.config.layout), "the layout must hold a global attention letter"
    model.compiled_step = lambda ahead_of_time=False: model.step
    step = ExportedHybridStep(model)
    decode_both(model, step, text_ids(1, 14, seed=2), 8, copy_at=11)
    assert step._jit is not None and not step._graphs[next(iter(step._graphs))]
    assert "state grows" in capsys.readouterr().err
