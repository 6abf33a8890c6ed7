"""One training step of a small hybrid model is the same with the Triton kernels and without.

Under the interpreter on CPU, float32: the loss (to 1e-5), the boundaries the router picks and
every parameter gradient (to 1e-4) agree with the pure-PyTorch path, and the references never
run. The model is built on Mamba-2 and sliding-window attention, or on each recurrent family
(RetNet, linear attention, S4D, Mega) in the encoder and the main network. S4D's and Mega's
LTI convolution (`bytelm.layers.lti`) is the same batched matrix products on every path; their
models still run the Triton scan (Mamba-2 letters) and window attention (Mega, `S`).
"""

import pytest
import torch
import torch.nn.functional as F
from kernel_checks import rel_rms

from bytelm.config import ModelConfig
from bytelm.kernels.ssd import naive as ssd_naive
from bytelm.kernels.swa import naive as swa_naive
from bytelm.models import build_model

COMMON = dict(
    d_model=[16, 32], d_intermediate=[32, 64], n_heads=[2, 2], n_kv_heads=[1, 2], window=[5, 8],
    sinks=[1, 2], chunking=["dynamic"], target_compression=[2.5], ssm_d_state=16, ssm_headdim=8,
    ssm_chunk_size=16,
)
FAMILY = dict(
    rec_heads=2, rec_expand=2, s4d_d_state=2, s4d_headdim=8, mega_ema_dim=2, mega_headdim=8,
    mega_window=[6, 8],
)


def config(letter: str) -> ModelConfig:
    """Mamba-2 and attention for "m"; otherwise the family's letter in encoder and main network."""
    if letter == "m":
        return ModelConfig(layout=["m1S1", ["M1S1"], "s1m1"], **COMMON)
    return ModelConfig(layout=[f"{letter}1m1", [f"{letter.upper()}1S1"], "s1"], **COMMON, **FAMILY)


def training_step(letter: str, mode: str, monkeypatch: pytest.MonkeyPatch, ids: torch.Tensor):
    """(loss, boundary masks, {name: grad}) of one forward + backward under BYTELM_KERNELS=mode."""
    monkeypatch.setenv("BYTELM_KERNELS", mode)
    torch.manual_seed(0)
    model = build_model(config(letter)).float()
    out = model(ids[:, :-1])
    loss = F.cross_entropy(out.logits.flatten(0, 1), ids[:, 1:].flatten()) + out.aux["ratio_loss"]
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), [m.clone() for m in out.aux["boundary_mask"]], grads


@pytest.mark.parametrize("letter", ["m", "r", "l", "c", "e"])
def test_training_step_matches_reference(letter, monkeypatch):
    ids = torch.randint(0, 256, (2, 46), generator=torch.Generator().manual_seed(3))
    loss_ref, masks_ref, grads_ref = training_step(letter, "reference", monkeypatch, ids)

    def refuse(*args, **kwargs):
        raise AssertionError("a reference op ran although BYTELM_KERNELS=triton")

    monkeypatch.setattr(ssd_naive, "chunk_scan", refuse)
    monkeypatch.setattr(swa_naive, "sliding_window_attention", refuse)
    loss_tri, masks_tri, grads_tri = training_step(letter, "triton", monkeypatch, ids)

    for a, b in zip(masks_tri, masks_ref):
        assert torch.equal(a, b)
    assert abs(loss_tri.item() - loss_ref.item()) < 1e-5 * abs(loss_ref.item())
    assert grads_tri.keys() == grads_ref.keys() and len(grads_ref) > 10
    errors = {
        n: rel_rms(grads_tri[n], grads_ref[n]) for n in grads_ref if grads_ref[n].abs().max() > 0
    }
    bad = {n: e for n, e in errors.items() if not e < 1e-4}
    assert not bad, bad
