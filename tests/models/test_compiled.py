"""A compiled hybrid trains like the eager one (compiled whole or block by block): same loss,
same gradients, few graphs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hybrid_helpers import text_ids, tiny_config

from bytelm.errors import BytelmError
from bytelm.layers.network import Block
from bytelm.models import build_model
from bytelm.models.compiled import compile_mode, compile_model, compile_stats
from bytelm.models.stage import n_blocks


def loss_and_grads(model, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(ids[:, :-1])
    loss = F.cross_entropy(out.logits.flatten(0, 1), ids[:, 1:].flatten()) + out.aux["ratio_loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compile_modes_of_a_recipe():
    assert [compile_mode(v) for v in (False, None, True, "whole", "block")] == [None, None, "whole", "whole", "block"]
    with pytest.raises(BytelmError, match="compile must be"):
        compile_mode("blocks")
    with pytest.raises(BytelmError, match="compile mode must be"):
        compile_model(build_model(tiny_config()), "eager")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["whole", "block"])
def test_compiled_training_step_equals_eager(mode):
    torch.manual_seed(0)
    eager = build_model(tiny_config())
    torch.manual_seed(0)
    compiled = compile_model(build_model(tiny_config()), mode)
    wrapped = [m for m in compiled.modules() if m._compiled_call_impl is not None]  # what .compile() wrapped
    if mode == "block":
        assert wrapped and all(isinstance(m, Block) for m in wrapped) and len(wrapped) == n_blocks(tiny_config())
    else:
        assert wrapped == [compiled]
    graphs, max_counts = [], set()
    for seed in range(3):  # three batches with different chunk counts, one shape bucket
        ids = text_ids(2, 97, seed=seed)
        eager.eval()  # a look at the chunk counts must not advance the ratio loss's integral
        max_counts.add(int(eager(ids[:, :-1]).aux["boundary_mask"][0].sum(1).max()))
        eager.train()
        loss, grads = loss_and_grads(eager, ids)
        loss_c, grads_c = loss_and_grads(compiled, ids)
        graphs.append(compile_stats()["graphs"])
        assert abs(loss_c - loss) < 1e-5
        assert grads.keys() == grads_c.keys()
        for name, grad in grads.items():
            err = (grads_c[name] - grad).abs().max() / grad.abs().max().clamp(min=1e-12)
            assert err < 1e-4, f"{name}: relative error {err:.2e}"
    assert len(max_counts) > 1, "the batches must differ in their chunk counts"
    assert graphs[0] > 0 and graphs[1:] == [graphs[0]] * 2, f"recompiled: graphs after each batch {graphs}"


@pytest.mark.slow
def test_compiled_decode_step_equals_eager():
    """`generation.compiled_step` gives the eager step's logits byte by byte, at batch 1 (a host
    check skips the inner level on bytes without a chunk start) and at batch 2 (rows disagree, so
    the inner level runs masked), and compiles nothing new once both paths were met."""
    from bytelm.generation import compiled_step

    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    step = compiled_step(model)
    ids = text_ids(2, 48, seed=3)  # [2, 48]
    with torch.inference_mode():
        for batch in (1, 2):
            prompt, follow = ids[:batch, :16], ids[:batch, 16:]
            _, eager_state = model.prefill(prompt, model.allocate_state(batch))
            _, compiled_state = model.prefill(prompt, model.allocate_state(batch))
            starts, graphs = set(), []
            for t in range(follow.shape[1]):
                before = eager_state.routing.chunks.clone()
                logits, eager_state = model.step(follow[:, t], eager_state)
                logits_c, compiled_state = step(follow[:, t], compiled_state)
                torch.testing.assert_close(logits_c, logits, rtol=1e-5, atol=1e-5)
                starts.add(tuple((eager_state.routing.chunks - before).tolist()))
                graphs.append(compile_stats()["graphs"])
            assert len(starts) > 1, f"batch {batch}: the bytes must differ in their chunk starts"
            assert graphs[-1] == graphs[len(graphs) // 2], f"batch {batch}: still compiling {graphs}"
