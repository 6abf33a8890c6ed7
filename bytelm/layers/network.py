"""A network of pre-norm residual blocks built from a layout string, with a final RMSNorm.

One letter per block: `m` Mamba-2, `s` sliding-window attention with sinks, `t` full causal
attention, `r` RetNet retention, `l` linear attention, `c` S4D-Real, `e` Mega, `g` GLA, `d`
Gated DeltaNet, `w` RWKV-7 time mixing; upper case adds a SwiGLU MLP after the mixer (`W`:
RWKV-7's channel mix). The state of a network is the list of its blocks' states: the mixer's
(SwiGLU holds none), or for `W` [time-mix state, channel-mix state], the channel mix's token
shift being state too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bytelm.layers.attention import Attention
from bytelm.layers.deltanet import GatedDeltaNet
from bytelm.layers.gla import GLA
from bytelm.layers.linear_attention import LinearAttention
from bytelm.layers.mega import Mega
from bytelm.layers.mlp import SwiGLU
from bytelm.layers.norm import RMSNorm
from bytelm.layers.retnet import Retention
from bytelm.layers.rwkv7 import RWKV7ChannelMix, RWKV7TimeMix
from bytelm.layers.s4d import S4D
from bytelm.layers.scan_inputs import NARROW_CHUNK
from bytelm.layers.ssm import Mamba2


@dataclass
class LevelSpec:
    """Everything a network of one level needs besides its letters."""

    d_model: int
    d_intermediate: int
    n_heads: int
    n_kv_heads: int
    window: int
    sinks: int
    ssm_d_state: int
    ssm_headdim: int
    ssm_expand: int
    ssm_ngroups: int
    ssm_d_conv: int
    ssm_chunk_size: int
    rope_base: float
    norm_eps: float
    out_std: float  # initial std of the projections that write into the residual stream
    rec_heads: int = 2
    rec_expand: int = 2
    s4d_d_state: int = 16
    s4d_headdim: int = 16
    mega_ema_dim: int = 8
    mega_headdim: int = 16
    mega_window: int = 64
    gla_heads: int = 2
    gdn_heads: int = 2
    gdn_expand_v: int = 2
    rwkv_heads: int = 2


def make_mixer(letter: str, spec: LevelSpec) -> nn.Module:
    """The mixer for one layout letter (case ignored)."""
    kind = letter.lower()
    if kind == "m":
        return Mamba2(
            spec.d_model, d_state=spec.ssm_d_state, headdim=spec.ssm_headdim, expand=spec.ssm_expand,
            ngroups=spec.ssm_ngroups, d_conv=spec.ssm_d_conv, chunk_size=spec.ssm_chunk_size,
            norm_eps=spec.norm_eps, out_std=spec.out_std,
        )
    if kind == "r":
        return Retention(
            spec.d_model, spec.rec_heads, expand=spec.rec_expand, chunk_size=spec.ssm_chunk_size,
            rope_base=spec.rope_base, norm_eps=spec.norm_eps,
        )
    if kind == "l":
        return LinearAttention(spec.d_model, spec.rec_heads, expand=spec.rec_expand, chunk_size=spec.ssm_chunk_size)
    if kind == "c":
        chunk = min(spec.ssm_chunk_size, NARROW_CHUNK)
        return S4D(spec.d_model, spec.s4d_d_state, spec.s4d_headdim, chunk_size=chunk)
    if kind == "e":
        return Mega(
            spec.d_model, spec.mega_ema_dim, spec.mega_headdim, spec.mega_window,
            chunk_size=min(spec.ssm_chunk_size, NARROW_CHUNK), rope_base=spec.rope_base,
        )
    if kind == "g":
        chunk = min(spec.ssm_chunk_size, NARROW_CHUNK)
        return GLA(spec.d_model, spec.gla_heads, chunk_size=chunk, norm_eps=spec.norm_eps, out_std=spec.out_std)
    if kind == "d":
        return GatedDeltaNet(
            spec.d_model, spec.gdn_heads, expand_v=spec.gdn_expand_v, d_conv=spec.ssm_d_conv,
            chunk_size=spec.ssm_chunk_size, norm_eps=spec.norm_eps, out_std=spec.out_std,
        )
    if kind == "w":
        chunk = min(spec.ssm_chunk_size, NARROW_CHUNK)
        return RWKV7TimeMix(spec.d_model, spec.rwkv_heads, chunk_size=chunk, out_std=spec.out_std)
    window = spec.window if kind == "s" else None
    sinks = spec.sinks if kind == "s" else 0
    return Attention(
        spec.d_model, spec.n_heads, spec.n_kv_heads, window, sinks, spec.rope_base, spec.out_std
    )


def make_mlp(letter: str, spec: LevelSpec) -> nn.Module | None:
    """The MLP after the mixer: none for lower case, RWKV-7's channel mix for `W`, else SwiGLU."""
    if not letter.isupper():
        return None
    if letter == "W":
        return RWKV7ChannelMix(spec.d_model, spec.d_intermediate, spec.out_std)
    return SwiGLU(spec.d_model, spec.d_intermediate, spec.out_std)


def make_block(letter: str, spec: LevelSpec) -> Block:
    """The residual block of one layout letter."""
    return ChannelMixBlock(letter, spec) if letter == "W" else Block(letter, spec)


class Block(nn.Module):
    """x + mixer(norm(x)), then x + mlp(norm(x)) when the letter is upper case."""

    def __init__(self, letter: str, spec: LevelSpec) -> None:
        super().__init__()
        self.letter = letter
        self.norm = RMSNorm(spec.d_model, spec.norm_eps)
        self.mixer = make_mixer(letter, spec)
        self.mlp_norm = RMSNorm(spec.d_model, spec.norm_eps) if letter.isupper() else None
        self.mlp = make_mlp(letter, spec)

    def allocate_state(self, batch_size: int, device=None, dtype=None):
        return self.mixer.allocate_state(batch_size, device, dtype)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mlp is None else x + self.mlp(self.mlp_norm(x))

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        y, state = self.mixer(self.norm(x), state, lengths)
        return self._mlp(x + y), state

    def step(self, x: torch.Tensor, state, commit: torch.Tensor | None = None):
        y, state = self.mixer.step(self.norm(x), state, commit)
        return self._mlp(x + y), state


class ChannelMixBlock(Block):
    """`W`: RWKV-7 time mixing, then RWKV-7's channel mix; the state is [mixer, channel mix]."""

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> list:
        return [self.mixer.allocate_state(batch_size, device, dtype), self.mlp.allocate_state(batch_size, device, dtype)]

    def forward(self, x: torch.Tensor, state: list | None = None, lengths: torch.Tensor | None = None):
        mix, shift = (None, None) if state is None else state
        y, mix = self.mixer(self.norm(x), mix, lengths)
        x = x + y
        y, shift = self.mlp(self.mlp_norm(x), shift, lengths)
        return x + y, None if state is None else [mix, shift]

    def step(self, x: torch.Tensor, state: list, commit: torch.Tensor | None = None):
        y, mix = self.mixer.step(self.norm(x), state[0], commit)
        x = x + y
        y, shift = self.mlp.step(self.mlp_norm(x), state[1], commit)
        return x + y, [mix, shift]


class Network(nn.Module):
    """Blocks in layout order, then RMSNorm."""

    def __init__(self, letters: list[str], spec: LevelSpec) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(make_block(c, spec) for c in letters)
        self.norm = RMSNorm(spec.d_model, spec.norm_eps)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> list:
        return [b.allocate_state(batch_size, device, dtype) for b in self.blocks]

    def forward(
        self, x: torch.Tensor, state: list | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list | None]:
        """x [B, T, D] -> [B, T, D] and the states after the pass (None without input states)."""
        new = None if state is None else []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state[i], lengths)
            if new is not None:
                new.append(s)
        return self.norm(x), new

    def step(self, x: torch.Tensor, state: list, commit: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
        """x [B, D] -> [B, D] for one position; rows where `commit` [B] is false keep their state."""
        new = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s, commit)
            new.append(s)
        return self.norm(x), new

    def forward_level(
        self, x: torch.Tensor, ids: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor | None = None,
        state: list | None = None,
    ) -> tuple[torch.Tensor, list[dict], list | None]:
        """The level interface a hierarchy calls (shared with `Stage`): the innermost level has
        no chunking, so ids and starts are unused and there are no per-stage aux dicts."""
        y, state = self(x, state, lengths)
        return y, [], state

    def step_level(
        self, x: torch.Tensor, ids: torch.Tensor, state: list, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list]:
        """One position through the level (shared with `Stage`): x [B, D], ids [B] (unused)."""
        return self.step(x, state, commit)
