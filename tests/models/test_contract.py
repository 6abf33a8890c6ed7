"""Both model kinds answer one contract (bytelm.models.contract.LanguageModel), one meaning per
call: shapes, step == forward, prefill in pieces == forward, parameter counts, FLOPs per byte."""

from pathlib import Path

import pytest
import torch
import yaml
from hybrid_helpers import text_ids, tiny_model

from bytelm.config import BaselineConfig, config_from_dict
from bytelm.models import LanguageModel, build_model

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def tiny_baseline():
    torch.manual_seed(0)
    cfg = BaselineConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_intermediate=64, max_seq_len=64, bytes_per_token=3.5)
    return build_model(cfg).double().eval()


MODELS = {"hybrid": lambda: tiny_model(stages=2).eval(), "baseline": tiny_baseline}


@pytest.fixture(params=list(MODELS))
def model(request):
    return MODELS[request.param]()


def ids_for(model, batch: int, length: int) -> torch.Tensor:
    return text_ids(batch, length, seed=4) % model.config.vocab_size  # [B, T]


def test_both_kinds_are_language_models(model):
    assert isinstance(model, LanguageModel)
    assert model.config.kind in ("hybrid", "baseline")
    assert model.max_context == (64 if model.config.kind == "baseline" else None)


def test_shapes(model):
    v = model.config.vocab_size
    ids = ids_for(model, 3, 11)
    with torch.no_grad():
        assert model(ids).logits.shape == (3, 11, v)
        state = model.allocate_state(3, max_len=20, device="cpu", dtype=torch.float64)
        logits, state = model.prefill(ids, state)
        assert logits.shape == (3, 11, v)
        logits, state = model.step(ids[:, 0], state)
        assert logits.shape == (3, v)


def test_step_and_prefill_in_pieces_equal_forward(model):
    ids = ids_for(model, 3, 29)
    with torch.no_grad():
        full = model(ids).logits  # [B, T, V]
        state = model.allocate_state(3, max_len=29)
        steps = []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            steps.append(logits)
        stepped = torch.stack(steps, 1)
        torch.testing.assert_close(stepped, full, rtol=0, atol=1e-8)
        assert torch.equal(stepped.argmax(-1), full.argmax(-1))
        pieces, state = [], None
        for a, b in ((0, 5), (5, 6), (6, 20), (20, 29)):
            logits, state = model.prefill(ids[:, a:b], state)
            pieces.append(logits)
        torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=0, atol=1e-8)


def test_num_parameters_drops_the_input_embedding_only(model):
    total = sum(p.numel() for p in model.parameters())
    table = model.config.vocab_size * (model.config.d_model[0] if model.config.kind == "hybrid"
                                       else model.config.d_model)
    assert model.num_parameters() == total
    assert model.num_parameters(exclude_embeddings=True) == total - table


def _recipe_model(name: str):
    recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    with torch.device("meta"):
        model = build_model(config_from_dict(recipe["model"]["config"]))
    return model, recipe["data"]["seq_len"]


def test_flops_per_byte_in_bytes_for_both_kinds():
    """The recipes' FLOPs-matching comments: tiny-hybrid 3.277M and tiny-baseline 3.595M FLOPs
    per byte at their 512-byte windows (143 tokens at 3.579 bytes per token)."""
    hybrid, seq = _recipe_model("tiny-hybrid")
    baseline, seq_b = _recipe_model("tiny-baseline")
    assert seq == seq_b == 512
    assert hybrid.flops_per_byte(seq) == pytest.approx(3.277e6, rel=5e-4)
    assert baseline.flops_per_byte(seq) == pytest.approx(3.595e6, rel=5e-4)
    per_token = baseline.flops_per_byte(seq) * baseline.config.bytes_per_token
    assert baseline.flops_per_byte(seq, compression=4.0) == pytest.approx(per_token / 4.0)
    target = hybrid.config.target_compression
    assert hybrid.flops_per_byte(seq, target) == hybrid.flops_per_byte(seq)
    assert hybrid.flops_per_byte(seq, [2 * c for c in target]) < hybrid.flops_per_byte(seq)


@pytest.mark.slow
def test_compiled_step_equals_step(model):
    """`compiled_step()` answers like `step`, byte by byte (the two-stage hybrid's inner piece
    holds the inner stage's own chunk-start check)."""
    ids = ids_for(model, 2, 24)
    compiled = model.compiled_step()
    with torch.inference_mode():
        _, eager_state = model.prefill(ids[:, :8], model.allocate_state(2, max_len=24))
        _, compiled_state = model.prefill(ids[:, :8], model.allocate_state(2, max_len=24))
        for t in range(8, ids.shape[1]):
            logits, eager_state = model.step(ids[:, t], eager_state)
            logits_c, compiled_state = compiled(ids[:, t], compiled_state)
            torch.testing.assert_close(logits_c, logits, rtol=1e-9, atol=1e-9)
