"""One level of the hybrid's hierarchy: a `Stage` (encoder -> routing -> chunk -> inner level ->
dechunk -> residual -> decoder), its decoding state, and its step in three pieces.

A `Stage` and the innermost `Network` answer the same level interface, `forward_level(x, ids,
starts, lengths, state)` and `step_level(x, ids, state, commit)`. A stage's step is three pieces
(`step_enter`, `step_inner`, `step_exit`) that `step_level` runs with the chunk-start check
between them; the outermost stage's compiled step (`HybridLM.compiled_step`) runs them as two
graphs instead, `step_skipping`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.config import ModelConfig
from bytelm.layers.chunking import (
    RatioLoss,
    Router,
    RoutingState,
    boundary_alignment,
    chunk,
    chunk_capacity,
    dechunk,
    dechunk_step,
    routing_after_pass,
    routing_after_step,
    ste_one,
)
from bytelm.layers.init import output_std
from bytelm.layers.network import LevelSpec, Network
from bytelm.layers.ssm import state_dtype
from bytelm.layers.state import tree_where
from bytelm.models.entropy_model import entropy_router


def n_blocks(cfg: ModelConfig) -> int:
    """Residual blocks in the whole model (every letter of every network)."""
    return sum(len(letters) for level in cfg.levels for letters in level.values())


def level_spec(cfg: ModelConfig, level: int) -> LevelSpec:
    """The per-level settings of `cfg` at one level."""
    return LevelSpec(
        d_model=cfg.d_model[level], d_intermediate=cfg.d_intermediate[level],
        n_heads=cfg.n_heads[level], n_kv_heads=cfg.n_kv_heads[level], window=cfg.window[level],
        sinks=cfg.sinks[level], ssm_d_state=cfg.ssm_d_state, ssm_headdim=cfg.ssm_headdim,
        ssm_expand=cfg.ssm_expand, ssm_ngroups=cfg.ssm_ngroups, ssm_d_conv=cfg.ssm_d_conv,
        ssm_chunk_size=cfg.ssm_chunk_size, rope_base=cfg.rope_base, norm_eps=cfg.norm_eps,
        out_std=output_std(n_blocks(cfg)),
        rec_heads=cfg.rec_heads[level], rec_expand=cfg.rec_expand[level],
        s4d_d_state=cfg.s4d_d_state[level], s4d_headdim=cfg.s4d_headdim[level],
        mega_ema_dim=cfg.mega_ema_dim[level], mega_headdim=cfg.mega_headdim[level],
        mega_window=cfg.mega_window[level],
        gla_heads=cfg.gla_heads[level], gdn_heads=cfg.gdn_heads[level],
        gdn_expand_v=cfg.gdn_expand_v[level], rwkv_heads=cfg.rwkv_heads[level],
    )


@dataclass
class StageState:
    encoder: list
    routing: RoutingState
    inner: Any  # StageState, or the main network's list of layer states
    decoder: list


class Stage(nn.Module):
    """One level of the hierarchy with everything inside it."""

    def __init__(self, cfg: ModelConfig, level: int) -> None:
        super().__init__()
        levels = cfg.levels
        spec = level_spec(cfg, level)
        self.level, self.d_model = level, spec.d_model
        self.rule = cfg.chunking[level]
        self.target = cfg.target_compression[level]
        self.chunk_size = cfg.ssm_chunk_size
        self.padded = False  # chunk axis padded to `chunk_capacity`; `compile_model` sets it
        self.encoder = Network(levels[level]["encoder"], spec)
        self.router = entropy_router(cfg) if self.rule == "entropy" else Router(self.rule, spec.d_model)
        self.ratio_loss = (
            RatioLoss(self.target, cfg.ratio_loss_weight, cfg.ratio_integral_gain) if self.rule == "dynamic" else None
        )
        if "main" in levels[level + 1]:
            self.inner: Network | Stage = Network(levels[level + 1]["main"], level_spec(cfg, level + 1))
        else:
            self.inner = Stage(cfg, level + 1)
        extra = cfg.d_model[level + 1] - spec.d_model
        self.pad = nn.Parameter(torch.zeros(extra)) if extra else None
        self.residual = nn.Linear(spec.d_model, spec.d_model, bias=False)
        self.decoder = Network(levels[level]["decoder"], spec)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The encoder-decoder residual and the widening tail start at zero."""
        nn.init.zeros_(self.residual.weight)
        if self.pad is not None:
            nn.init.zeros_(self.pad)

    def allocate_state(self, batch_size: int, device=None, dtype=None) -> StageState:
        dtype = dtype or self.residual.weight.dtype
        zeros = torch.zeros(batch_size, self.d_model, device=device, dtype=dtype)
        count = torch.zeros(batch_size, dtype=torch.long, device=device)
        return StageState(
            encoder=self.encoder.allocate_state(batch_size, device, dtype),
            routing=RoutingState(
                prev=zeros, prev_id=count.clone(), z=zeros.to(state_dtype(dtype)), pos=count.clone(),
                chunks=count.clone(), entropy=self.router.allocate_state(batch_size, device),
            ),
            inner=self.inner.allocate_state(batch_size, device, dtype),
            decoder=self.decoder.allocate_state(batch_size, device, dtype),
        )

    def _widen(self, h: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., D_inner] by appending the learned tail."""
        if self.pad is None:
            return h
        return torch.cat([h, self.pad.to(h.dtype).expand(*h.shape[:-1], -1)], dim=-1)

    def _residual(self, h: torch.Tensor) -> torch.Tensor:
        """The zero-initialised skip from encoder to decoder, in float32 even under autocast."""
        dtype = torch.promote_types(h.dtype, torch.float32)
        with torch.autocast(device_type=h.device.type, enabled=False):
            return F.linear(h.to(dtype), self.residual.weight.to(dtype)).to(h.dtype)

    def forward(
        self,
        x: torch.Tensor,
        ids: torch.Tensor,
        starts: torch.Tensor,
        lengths: torch.Tensor | None = None,
        state: StageState | None = None,
    ) -> tuple[torch.Tensor, list[dict], StageState | None]:
        """x [B, T, D], ids [B, T] (the byte at each position), starts [B, T] (word starts).

        lengths [B]: real positions per row (None: all). Returns y [B, T, D], one aux dict per
        stage from this one inward, and the state after the pass when a state was given.
        """
        bsz, seqlen, _ = x.shape
        n = torch.full((bsz,), seqlen, device=x.device) if lengths is None else lengths  # [B]
        real = torch.arange(seqlen, device=x.device) < n[:, None]  # [B, T]
        h, enc_state = self.encoder(x, None if state is None else state.encoder, lengths)
        p, b, own = self.router.route(h, ids, None if state is None else state.routing)  # [B, T] each
        b = b & real
        capacity = chunk_capacity(seqlen, self.target) if self.padded else None
        counts, (hc, pc, idc, sc) = chunk(b, h, p, ids, starts, capacity=capacity)  # [B], [B, L, ...]
        zc, aux, inner_state = self.inner.forward_level(
            self._widen(hc), idc, sc, counts, None if state is None else state.inner
        )
        z0 = None if state is None else state.routing.z
        z, z_last = dechunk(zc[..., : self.d_model], pc, counts, b, z0, self.chunk_size)
        if self.rule == "dynamic":
            z = z * ste_one(torch.where(b, p, 1 - p))[..., None]
        y, dec_state = self.decoder(z + self._residual(h), None if state is None else state.decoder, lengths)
        aux = [self._aux(p, b, real, starts)] + aux
        if state is None:
            return y, aux, None
        routing = routing_after_pass(state.routing, h, ids, n, counts, z_last, own)
        return y, aux, StageState(enc_state, routing, inner_state, dec_state)

    forward_level = forward  # the level interface, shared with the innermost Network

    def _aux(self, p: torch.Tensor, b: torch.Tensor, real: torch.Tensor, starts: torch.Tensor) -> dict:
        loss = integral = p.new_zeros(())
        if self.ratio_loss is not None:
            loss = self.ratio_loss(p, b, real)
            integral = self.ratio_loss.integral.detach().clone()
        compression = (real.sum() / b.sum().clamp(min=1)).detach().float()
        return {
            "ratio_loss": loss, "compression": compression, "boundary_probs": p, "boundary_mask": b,
            "ratio_integral": integral, **boundary_alignment(b, starts, real),
        }

    def step_level(
        self, x: torch.Tensor, ids: torch.Tensor, state: StageState, commit: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, StageState]:
        """One position: x [B, D], ids [B] -> y [B, D]; rows where `commit` is false keep their state.

        The inner level steps with the rows that start a chunk here as its commit mask. It is
        skipped when no row starts one, and the mask is dropped when every row does: host checks,
        free on CPU. Traced inside a compiled call (an inner stage, within `HybridLM.compiled_step`'s
        inner graph), the first check cuts the graph there and the second is skipped: a mask is
        fused, a frame is not. Exported ahead of time (bytelm.models.exported), where a graph cannot
        be cut, the inner level always runs, masked. The outermost stage's compiled step is
        `step_skipping`.
        """
        entry = self.step_enter(x, ids, state, commit)
        inner_commit = entry.b if commit is None else entry.b & commit
        if torch.compiler.is_exporting() or bool(inner_commit.any()):
            if not torch.compiler.is_compiling() and bool(inner_commit.all()):
                inner_commit = None  # every row commits: no per-leaf select over the inner state
            z, inner_state = self.step_inner(entry, ids, state, inner_commit)
        else:
            z, inner_state = state.routing.z, state.inner
        return self.step_exit(entry, ids, z, inner_state, state, commit)

    def step_enter(
        self, x: torch.Tensor, ids: torch.Tensor, state: StageState, commit: torch.Tensor | None
    ) -> StepEntry:
        """The encoder's step and the routing decision for x [B, D] (first piece of a step)."""
        h, enc_state = self.encoder.step(x, state.encoder, commit)
        p, b, own = self.router.route(h[:, None], ids[:, None], state.routing)
        return StepEntry(h, p[:, 0], b[:, 0], own, enc_state)

    def step_inner(
        self, entry: StepEntry, ids: torch.Tensor, state: StageState, inner_commit: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        """The inner level's step and the dechunk EMA after it: z [B, D] and the inner state.
        Rows where `inner_commit` [B] is false (no chunk start, or not committing) keep both."""
        zc, inner_state = self.inner.step_level(self._widen(entry.h), ids, state.inner, inner_commit)
        return dechunk_step(zc[:, : self.d_model], entry.p, entry.b, state.routing.z), inner_state

    def step_exit(
        self, entry: StepEntry, ids: torch.Tensor, z: torch.Tensor, inner_state: Any, state: StageState,
        commit: torch.Tensor | None,
    ) -> tuple[torch.Tensor, StageState]:
        """The decoder's step on the dechunked z [B, D] plus the residual, and the routing
        bookkeeping (last piece of a step): y [B, D] and the stage's state after the position."""
        h, r = entry.h, state.routing
        y, dec_state = self.decoder.step(z.to(h.dtype) + self._residual(h), state.decoder, commit)
        routing = routing_after_step(r, h, ids, entry.b, z, entry.own)
        if commit is not None:
            routing = tree_where(commit, routing, r)
        return y, StageState(entry.encoder, routing, inner_state, dec_state)


@dataclass
class StepEntry:
    """What a stage's step has after its encoder and router: h [B, D] (encoder output), the
    boundary probability p [B] and decision b [B], the routing rule's own state, and the encoder's
    state after the position."""

    h: torch.Tensor
    p: torch.Tensor
    b: torch.Tensor
    own: Any
    encoder: list


def step_skipping(outer: Callable, inner: Callable, ids: torch.Tensor, state: StageState) -> Any:
    """One byte through the outermost stage as two calls (`HybridLM.compiled_step`'s graphs).

    `outer(ids, state)` runs the encoder and router and, as if no row started a chunk, the
    decoder: (entry, out, state after). When no row starts one, that is the byte's answer, in
    one call. Otherwise `inner(entry, ids, state, inner_commit)` runs the inner level and the
    decoder again on its output, with the rows that start a chunk as its commit mask (None when
    every row does). The same host checks as `Stage.step_level`, free on CPU, pick the graph.
    """
    entry, out, after = outer(ids, state)
    if not bool(entry.b.any()):
        return out, after
    return inner(entry, ids, state, None if bool(entry.b.all()) else entry.b)
