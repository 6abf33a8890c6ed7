"""Small instances of the scan-based recurrent families (RetNet, linear attention, S4D, Mega),
moved off their initial values so that no parameter sits at a special value, and random
initial states in each mixer's canonical form."""

import dataclasses

import torch

from bytelm.layers.linear_attention import LinearAttention
from bytelm.layers.mega import Mega
from bytelm.layers.retnet import Retention
from bytelm.layers.s4d import S4D

D_MODEL = 16
FAMILIES = {
    "retnet": lambda: Retention(D_MODEL, n_heads=2, expand=2, chunk_size=8),
    "linear": lambda: LinearAttention(D_MODEL, n_heads=2, expand=1, chunk_size=8),
    "s4d": lambda: S4D(D_MODEL, d_state=4, headdim=4, chunk_size=8),
    "mega": lambda: Mega(D_MODEL, ema_dim=4, headdim=4, window=5, chunk_size=8),
}


def make(family: str, seed: int = 0, dtype: torch.dtype = torch.float64):
    """The family's mixer with every parameter perturbed by N(0, 0.1)."""
    torch.manual_seed(seed)
    mixer = FAMILIES[family]().to(dtype)
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return mixer


def random_state(mixer, batch: int, seed: int = 1):
    """An allocated state filled with random values where they are free (float leaves), and
    for buffers of keys a right-aligned valid pattern with per-row position counts."""
    gen = torch.Generator().manual_seed(seed)
    state = mixer.allocate_state(batch)
    values = {}
    for f in dataclasses.fields(state):
        t = getattr(state, f.name)
        if t.is_floating_point():
            values[f.name] = 0.5 * torch.randn(t.shape, generator=gen, dtype=t.dtype)
        else:
            values[f.name] = t
    if "valid" in values:
        size = values["valid"].shape[1]
        count = torch.tensor([size, 2, 0, 3][:batch])  # full, partial, empty, ...
        values["valid"] = torch.arange(size) >= size - count[:, None]
        values["pos"] = count + torch.tensor([7, 0, 0, 1][:batch])
    elif "pos" in values:
        values["pos"] = torch.tensor([0, 5, 11, 2][:batch])
    return type(state)(**values)
