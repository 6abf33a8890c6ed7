"""A compiled hybrid trains like the eager one: same loss, same gradients, few graphs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hybrid_helpers import text_ids, tiny_config

from bytelm.models import build_model
from bytelm.models.compiled import compile_model, compile_stats


def loss_and_grads(model, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(ids[:, :-1])
    loss = F.cross_entropy(out.logits.flatten(0, 1), ids[:, 1:].flatten()) + out.aux["ratio_loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_compiled_training_step_equals_eager():
    torch.manual_seed(0)
    eager = build_model(tiny_config())
    torch.manual_seed(0)
    compiled = compile_model(build_model(tiny_config()))
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
