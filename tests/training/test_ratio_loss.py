"""The ratio loss: the model returns weight x H-Net's formula on its own boundary probabilities,
and the training objective adds it, so its gradient reaches the routing projections."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from hybrid_helpers import text_ids, tiny_config  # noqa: E402

from bytelm.layers.chunking import Router  # noqa: E402
from bytelm.models import build_model  # noqa: E402
from bytelm.training.module import LitLM  # noqa: E402


def expected_ratio_loss(out, targets: list[float], weight: float) -> torch.Tensor:
    """weight * N/(N-1) ((N-1) F G + (1-F)(1-G)) per stage, F the boundary fraction, G the mean p,
    both over the real positions of the stage (an inner stage's rows hold the outer chunks)."""
    total = torch.zeros((), dtype=torch.float64)
    real = None  # every position of the outermost stage is real
    for p, b, n in zip(out.aux["boundary_probs"], out.aux["boundary_mask"], targets):
        if real is None:
            real = torch.ones_like(b)
        frac = (b & real).sum() / real.sum()
        mean_p = (p.double() * real).sum() / real.sum()
        total = total + weight * n / (n - 1) * ((n - 1) * frac * mean_p + (1 - frac) * (1 - mean_p))
        chunks = (b & real).sum(1)  # [B] positions of the next stage per row
        width = int(chunks.max())
        real = torch.arange(width)[None, :] < chunks[:, None]
    return total


@pytest.mark.parametrize("stages", [1, 2])
def test_model_returns_the_weighted_formula(stages: int):
    cfg = tiny_config(stages=stages, ratio_loss_weight=0.05)
    torch.manual_seed(0)
    model = build_model(cfg).double()
    out = model(text_ids(3, 64, seed=stages))
    expected = expected_ratio_loss(out, list(cfg.target_compression), cfg.ratio_loss_weight)
    assert float(expected) > 0
    assert float(out.aux["ratio_loss"]) == pytest.approx(float(expected), rel=1e-12)


def test_training_objective_adds_it_and_it_reaches_the_routing():
    lit = LitLM(tiny_config(stages=1).to_dict())
    ids = text_ids(2, 65, seed=3)
    loss, nll, aux = lit.compute_loss(ids)
    assert float(loss) == pytest.approx(float(nll / ids[:, 1:].numel() + aux["ratio_loss"]), rel=1e-6)
    router = next(m for m in lit.model.modules() if isinstance(m, Router))
    weights = [router.q_proj.weight, router.k_proj.weight]
    from_ratio = torch.autograd.grad(aux["ratio_loss"], weights, retain_graph=True)
    from_loss = torch.autograd.grad(loss, weights, retain_graph=True)
    from_nll = torch.autograd.grad(nll / ids[:, 1:].numel(), weights)
    for r, total, n in zip(from_ratio, from_loss, from_nll):
        assert float(r.abs().max()) > 0
        torch.testing.assert_close(total, n + r, rtol=1e-4, atol=1e-9)
