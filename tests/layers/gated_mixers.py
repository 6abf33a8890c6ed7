"""Small instances of the gated recurrent families (GLA, Gated DeltaNet, RWKV-7), moved off
their initial values so that no parameter sits at a special value."""

import torch

from bytelm.layers.deltanet import GatedDeltaNet
from bytelm.layers.gla import GLA
from bytelm.layers.rwkv7 import RWKV7ChannelMix, RWKV7TimeMix

D_MODEL = 16
GATED = {
    "gla": lambda: GLA(D_MODEL, n_heads=2, chunk_size=8),
    "deltanet": lambda: GatedDeltaNet(D_MODEL, n_heads=2, expand_v=2, d_conv=4, chunk_size=8),
    "rwkv7": lambda: RWKV7TimeMix(D_MODEL, n_heads=2, chunk_size=8),
    "rwkv7-channel-mix": lambda: RWKV7ChannelMix(D_MODEL, 24),
}


def make(family: str, seed: int = 0, dtype: torch.dtype = torch.float64):
    """The family's mixer with every parameter perturbed by N(0, 0.1)."""
    torch.manual_seed(seed)
    mixer = GATED[family]().to(dtype)
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return mixer
