"""Initialisation of every hybrid recipe's model: identity routing, zero residuals, and the
projection scales the design asks for (each module sets its own parameters, children first)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from entropy_fixtures import stand_in_entropy_lm, with_entropy_lm

from bytelm.config import ModelConfig, config_from_dict
from bytelm.layers.attention import Attention
from bytelm.layers.chunking import Router
from bytelm.layers.mlp import SwiGLU
from bytelm.layers.ssm import Mamba2
from bytelm.models import build_model
from bytelm.models.stage import Stage

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
HYBRIDS = sorted(
    p.stem for p in RECIPES.glob("*.yaml")
    if yaml.safe_load(p.read_text())["model"]["config"].get("kind", "hybrid") == "hybrid"
)


ENTROPY_LM: list[Path] = []  # stands in for the run dir entropy recipes name


@pytest.fixture(scope="module", autouse=True)
def entropy_lm(tmp_path_factory):
    ENTROPY_LM.append(stand_in_entropy_lm(tmp_path_factory.mktemp("entropy-lm") / "run", RECIPES))
    yield
    ENTROPY_LM.clear()


def _model(name: str):
    config = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["model"]["config"]
    cfg = config_from_dict(with_entropy_lm(config, ENTROPY_LM[0]))
    assert isinstance(cfg, ModelConfig)
    torch.manual_seed(0)
    return build_model(cfg)


def _std(weight: torch.Tensor) -> float:
    return float(weight.detach().float().std())


def test_every_hybrid_recipe_is_covered():
    assert {"tiny-hybrid", "tiny-hybrid-2stage", "small-hybrid", "large-hybrid"} <= set(HYBRIDS)


@pytest.mark.parametrize("name", HYBRIDS)
def test_routing_starts_as_identity_and_residuals_at_zero(name: str):
    model = _model(name)
    routers = [m for m in model.modules() if isinstance(m, Router) and m.rule == "dynamic"]
    stages = [m for m in model.modules() if isinstance(m, Stage)]
    assert len(stages) == model.config.n_stages
    assert len(routers) == model.config.chunking.count("dynamic")
    for router in routers:
        eye = torch.eye(router.q_proj.weight.shape[0])
        assert torch.equal(router.q_proj.weight, eye), f"{name}: W_q is not the identity"
        assert torch.equal(router.k_proj.weight, eye), f"{name}: W_k is not the identity"
    for stage in stages:
        assert not stage.residual.weight.any(), f"{name}: residual of level {stage.level} is not zero"
        if stage.pad is not None:
            assert not stage.pad.any()


def test_projection_scales_of_tiny_hybrid():
    model = _model("tiny-hybrid")
    blocks = sum(len(letters) for level in model.config.levels for letters in level.values())
    out_std = 0.02 / math.sqrt(2 * blocks)
    assert _std(model.embedding.weight) == pytest.approx(0.02, rel=0.05)
    assert _std(model.head.weight) == pytest.approx(0.02, rel=0.05)
    pairs = []
    for m in model.modules():
        if isinstance(m, Mamba2):
            pairs += [(m.in_proj, 0.02), (m.out_proj, out_std)]
            assert torch.equal(m.D, torch.ones_like(m.D))
            assert bool(((m.A_log >= 0) & (m.A_log <= math.log(16))).all())
            dt = torch.nn.functional.softplus(m.dt_bias)
            assert bool(((dt >= 1e-3 * 0.999) & (dt <= 0.1 * 1.001)).all())
        elif isinstance(m, Attention):
            pairs += [(m.qkv, 0.02), (m.out, out_std)]
        elif isinstance(m, SwiGLU):
            pairs += [(m.w_in, 0.02), (m.w_out, out_std)]
    assert len(pairs) >= 10
    for linear, std in pairs:
        assert _std(linear.weight) == pytest.approx(std, rel=0.15)
