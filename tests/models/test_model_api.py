"""The model's public surface: aux outputs, parameter counts, optimizer groups, dtypes."""

import torch
from hybrid_helpers import text_ids, tiny_config, tiny_model

from bytelm import ModelConfig, build_model
from bytelm.layers.chunking import ALIGNMENT_KEYS


def test_aux_outputs():
    model = tiny_model(stages=2)
    ids = text_ids(2, 30)
    out = model(ids)
    aux = out.aux
    assert out.logits.shape == (2, 30, 260)
    assert aux["ratio_loss"].dim() == 0 and aux["ratio_loss"].requires_grad
    for key in ("compression", "boundary_probs", "boundary_mask", "ratio_integral", *ALIGNMENT_KEYS):
        assert len(aux[key]) == 2, key
    mask = aux["boundary_mask"][0]
    assert aux["compression"][0].item() == ids.numel() / mask.sum().item()
    assert torch.all(mask[:, 0]) and torch.equal(mask, aux["boundary_probs"][0] > 0.5)
    assert 0 <= aux["word_start_precision"][0] <= aux["word_edge_precision"][0] <= 1


def test_space_chunking_counts_words():
    model = tiny_model(stages=1, chunking="space")
    ids = torch.tensor([list(b"one two three four")])
    aux = model(ids).aux
    assert aux["boundary_mask"][0][0].nonzero().flatten().tolist() == [0, 3, 7, 13]
    assert aux["ratio_loss"].item() == 0.0


def test_parameters_and_groups():
    cfg = tiny_config(stages=2, lr_multiplier=[2.0, 1.5, 1.0])
    model = build_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total
    assert model.num_parameters(exclude_embeddings=True) == total - 260 * 16
    groups = model.optimizer_groups(weight_decay=0.1, lr=1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    by_id = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_id[id(named["embedding.weight"])]["weight_decay"] == 0.0
    assert by_id[id(named["head.weight"])]["lr"] == 2e-3
    assert by_id[id(named["backbone.inner.encoder.blocks.0.mixer.qkv.weight"])]["lr"] == 1.5e-3
    inner_main = "backbone.inner.inner.blocks.0.mixer.in_proj.weight"
    assert by_id[id(named[inner_main])]["lr"] == 1e-3 and by_id[id(named[inner_main])]["weight_decay"] == 0.1
    for name in ("backbone.encoder.norm.weight", "backbone.router.q_proj.weight",
                 "backbone.encoder.blocks.0.mixer.A_log"):
        assert by_id[id(named[name])]["weight_decay"] == 0.0, name


def test_float32_and_public_names():
    cfg = ModelConfig.from_dict(tiny_config().to_dict())
    torch.manual_seed(0)
    model = build_model(cfg)
    ids = text_ids(2, 20)
    logits = model(ids).logits
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    pre, _ = model.prefill(ids)
    assert torch.allclose(pre, logits, atol=1e-5)


def test_bfloat16_runs():
    """Low precision must not break the dechunk EMA (1 - 1e-4 rounds to 1 in bfloat16)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(stages=2)).to(torch.bfloat16)
    ids = text_ids(2, 40)
    out = model(ids)
    out.logits.float().sum().backward()
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    _, state = model.prefill(ids[:, :20])
    logits, _ = model.step(ids[:, 20], state)
    assert torch.isfinite(logits).all()
