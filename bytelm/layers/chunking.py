"""Chunking between two levels: routing (where chunks start), chunk, dechunk, ratio loss.

One rule everywhere: position t starts a chunk iff p_t > 0.5, and p_0 = 1.

- `dynamic`: p_t = (1 - cos(W_q h_t, W_k h_{t-1})) / 2 with W_q, W_k initialised to the
  identity (H-Net's routing module).
- `space`: a chunk starts at a space-like byte (anything but an ASCII letter, digit or a byte
  >= 0x80, so multi-byte UTF-8 characters count as letters) that follows a non-space-like byte,
  as in SpaceByte: the inner network sees a word and its delimiter before the next word.
- `fixed:P`: a chunk starts at every P-th position.
- `entropy`: a frozen byte LM's next-byte entropy decides (bytelm.layers.entropy_chunking,
  whose router answers `route` and `allocate_state` as `Router` does).

`chunk` gathers the chunk-start vectors into a right-padded [B, L, D] tensor (rows differ in
their chunk counts; everything downstream is causal, so the padding at the tail cannot leak into
real positions). `dechunk` smooths the inner outputs with the EMA z_j = p_j c_j + (1 - p_j)
z_{j-1} over chunks, computed by the SSD scan, and repeats each value until the next chunk start.
In decoding, `dechunk_step` is the same EMA one position at a time, and `routing_after_pass` /
`routing_after_step` carry the routing state (previous position, EMA value, counters) forward.

Static shapes: a compiled model pads the chunk axis to one of two widths, the stage's capacity
(`chunk_capacity`: CAPACITY_SLACK times the chunk count its target compression expects, rounded up
to a multiple of `WIDTH_BUCKET`, 64, the recipes' scan chunk length, so the padding costs their
scans nothing) when every row fits, else the whole sequence; so a whole run compiles each stage
for two shapes at most, even while the chunker is still far from its target early in training.
Eager models do not pad (`capacity=None`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.kernels.ssd import chunk_scan
from bytelm.layout import chunking_period

P_CLAMP = 1e-4
WIDTH_BUCKET = 64
CAPACITY_SLACK = 1.5


@dataclass
class RoutingState:
    prev: torch.Tensor  # [B, D] encoder output at the previous position
    prev_id: torch.Tensor  # [B] byte id at the previous position (level 0; inner levels: the chunk's first byte)
    z: torch.Tensor  # [B, D] dechunk EMA after the last chunk
    pos: torch.Tensor  # [B] int64 positions seen at this level
    chunks: torch.Tensor  # [B] int64 chunks started so far
    entropy: Any = None  # the entropy rule's state (bytelm.layers.entropy_chunking), else None


def spacelike(ids: torch.Tensor) -> torch.Tensor:
    """True for ids that are not an ASCII letter or digit and not a byte >= 0x80 (specials count)."""
    letter = ((ids >= 65) & (ids <= 90)) | ((ids >= 97) & (ids <= 122))
    digit = (ids >= 48) & (ids <= 57)
    high = (ids >= 128) & (ids < 256)
    return ~(letter | digit | high)


def word_starts(ids: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the byte follows a space-like byte and is not one itself (t = 0 is not)."""
    prev = F.pad(ids[:, :-1], (1, 0), value=ord("a"))
    return spacelike(prev) & ~spacelike(ids)


class Router(nn.Module):
    """Boundary probabilities and boundaries for one chunking rule."""

    def __init__(self, rule: str, d_model: int) -> None:
        super().__init__()
        self.rule = rule
        self.period = chunking_period(rule)
        if rule == "dynamic":
            self.q_proj = nn.Linear(d_model, d_model, bias=False)
            self.k_proj = nn.Linear(d_model, d_model, bias=False)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """W_q = W_k = I, so at first p_t compares consecutive encoder outputs directly."""
        if self.rule == "dynamic":
            with torch.no_grad():
                self.q_proj.weight.copy_(torch.eye(self.q_proj.weight.shape[0]))
                self.k_proj.weight.copy_(torch.eye(self.k_proj.weight.shape[0]))

    def forward(
        self, h: torch.Tensor, ids: torch.Tensor, state: RoutingState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [B, T, D], ids [B, T] -> p [B, T] (h's dtype) and boundaries b [B, T] bool."""
        bsz, seqlen, _ = h.shape
        start = torch.zeros(bsz, dtype=torch.long, device=h.device) if state is None else state.pos
        pos = start[:, None] + torch.arange(seqlen, device=h.device)  # [B, T]
        first = pos == 0
        if self.rule == "dynamic":
            before = h.new_zeros(bsz, 1, h.shape[-1]) if state is None else state.prev[:, None].to(h.dtype)
            prev = torch.cat([before, h[:, :-1]], dim=1)  # [B, T, D]
            cos = F.cosine_similarity(self.q_proj(h), self.k_proj(prev), dim=-1)
            p = torch.where(first, torch.ones_like(cos), ((1 - cos) / 2).clamp(0, 1))
            return p, p > 0.5
        if self.rule == "space":
            before = ids[:, :1] if state is None else state.prev_id[:, None]
            prev = torch.cat([before, ids[:, :-1]], dim=1)
            b = first | (spacelike(ids) & ~spacelike(prev))
        else:
            b = pos % self.period == 0
        return b.to(h.dtype), b

    def route(
        self, h: torch.Tensor, ids: torch.Tensor, state: RoutingState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """p, b and the rule's own state after the pass (these rules keep none)."""
        p, b = self(h, ids, state)
        return p, b, None

    def allocate_state(self, batch_size: int, device=None) -> None:
        """The rule's own decoding state: none for dynamic, space and fixed."""
        return None

    def flops_per_byte(self, seq_len_bytes: int) -> float:
        """FLOPs per byte the rule adds beyond the hybrid's analytic count: none for these rules
        (the dynamic projections are counted with the stage)."""
        return 0.0


def chunk_capacity(seqlen: int, target: float) -> int:
    """The padded chunk-axis width of a compiled stage: CAPACITY_SLACK x seqlen / target rounded up
    to a multiple of WIDTH_BUCKET, at most seqlen."""
    expected = math.ceil(seqlen * CAPACITY_SLACK / target)
    return min(seqlen, -(-expected // WIDTH_BUCKET) * WIDTH_BUCKET)


@torch.compiler.disable
def chunk_width(counts: torch.Tensor, seqlen: int, capacity: int | None) -> int:
    """The chunk-axis length: the largest of counts [B] (at least 1) when capacity is None, else
    capacity when every row fits in it and seqlen when one does not. Read on the host, outside any
    compiled graph, so a graph after it is specialised on one of two widths, never on the count."""
    largest = max(1, int(counts.max()))
    if capacity is None:
        return largest
    return capacity if largest <= capacity else seqlen


def chunk(
    b: torch.Tensor, *tensors: torch.Tensor, capacity: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Counts [B] and each tensor [B, T, ...] gathered at the boundaries into [B, L, ...].

    L is `chunk_width`: the largest count, or the padded capacity (or T) of a compiled stage; rows
    with fewer chunks are right-padded with values from non-boundary positions, which the callers
    mask with `counts`.
    """
    counts = b.sum(dim=1)  # [B]
    width = chunk_width(counts, b.shape[1], capacity)
    order = torch.argsort((~b).to(torch.int8), dim=1, stable=True)[:, :width]  # [B, L]
    out = []
    for t in tensors:
        idx = order.view(*order.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:])
        out.append(t.gather(1, idx))
    return counts, out


def dechunk(
    zc: torch.Tensor,
    pc: torch.Tensor,
    counts: torch.Tensor,
    b: torch.Tensor,
    z0: torch.Tensor | None,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EMA over chunks and repeat to positions.

    zc [B, L, D] inner outputs, pc [B, L] boundary probabilities of the chunk starts, counts [B]
    real chunks per row, b [B, T] boundaries, z0 [B, D] EMA value before the first chunk (None:
    zeros). Returns z [B, T, D] (zc's dtype) and the EMA after each row's last real chunk [B, D].
    """
    bsz, width, dim = zc.shape
    cdt = torch.promote_types(zc.dtype, torch.float32)  # 1 - 1e-4 is 1.0 in bfloat16
    p = pc.to(cdt).clamp(P_CLAMP, 1 - P_CLAMP)
    real = torch.arange(width, device=zc.device) < counts[:, None]  # [B, L]
    dt = -torch.log1p(-p)  # [B, L]; exp(-dt) = 1 - p
    x = zc.to(cdt) / dt[..., None]  # so that dt * x * B = p * c
    dt = dt * real.to(dt.dtype)  # padded chunks: identity steps
    if z0 is None:
        z0 = zc.new_zeros(bsz, dim, dtype=cdt)
    A = -torch.ones(1, device=zc.device, dtype=cdt)
    ones = torch.ones(bsz, width, 1, 1, device=zc.device, dtype=cdt)
    y, last = chunk_scan(
        x[:, :, None, :], dt[..., None], A, p[..., None, None], ones, chunk_size,
        initial_state=z0[:, None, :, None], return_final_state=True,
    )  # y [B, L, 1, D], last [B, 1, D, 1]
    smooth = torch.cat([z0[:, None].to(zc.dtype), y[:, :, 0].to(zc.dtype)], dim=1)  # [B, 1 + L, D]
    idx = b.long().cumsum(dim=1)  # [B, T]; 0 = before the first chunk of this pass
    z = smooth.gather(1, idx[..., None].expand(-1, -1, dim))
    return z, last[:, 0, :, 0]


def ste_one(confidence: torch.Tensor) -> torch.Tensor:
    """Exactly 1 in value, with the gradient of `confidence` (straight-through)."""
    return (confidence - confidence.detach()) + 1.0


def boundary_rate(p: torch.Tensor, b: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, G) over the real positions: F the fraction that start a chunk, G the mean p."""
    n_real = real.sum().clamp(min=1)
    return (b & real).sum() / n_real, (p * real).sum() / n_real


def hnet_ratio(frac: torch.Tensor, mean_p: torch.Tensor, target: float) -> torch.Tensor:
    """H-Net's L = N/(N-1) ((N-1) F G + (1-F)(1-G)), minimal (1) at F = G = 1/N."""
    n = target
    return n / (n - 1) * ((n - 1) * frac * mean_p + (1 - frac) * (1 - mean_p))


class RatioLoss(nn.Module):
    """The dynamic chunker's compression objective: weight x (H-Net's ratio loss + I x G).

    H-Net's loss alone is a proportional controller: its gradient in G is N/(N-1) (N F - 1), zero
    at F = 1/N, so it settles where that pull equals the language-model loss's pull towards more
    chunks, off target by an amount that depends on the scale, the learning rate and the data (the
    tiny recipes ended at 2.6-2.8 bytes per chunk against 3.0). I is the integral of the error:
    after every training forward pass I += gain x (N F - 1), a Lagrange multiplier on the boundary
    rate updated by dual ascent, so the mean compression is driven onto the target. gain 0 is
    H-Net's loss exactly. I is training state (saved in training checkpoints by
    `bytelm.training.module`), not a weight: it changes nothing at inference.
    """

    def __init__(self, target: float, weight: float, gain: float) -> None:
        super().__init__()
        self.target, self.weight, self.gain = target, weight, gain
        self.register_buffer("integral", torch.zeros((), dtype=torch.float32), persistent=False)

    @torch.compiler.disable  # eager inside a compiled model: the partitioner would otherwise
    # recompute the multiplier in the backward pass from the buffer after its in-place update
    def forward(self, p: torch.Tensor, b: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """p, b, real [B, T] -> the weighted loss; in training mode, then advance the integral."""
        frac, mean_p = boundary_rate(p, b, real)
        multiplier = self.integral.to(mean_p.dtype, copy=True)  # a copy: the update below is in place
        loss = self.weight * (hnet_ratio(frac, mean_p, self.target) + multiplier * mean_p)
        if self.training and self.gain:
            with torch.no_grad():
                self.integral.add_(self.gain * (self.target * frac.float() - 1))
        return loss


def ratio_integrals(model: nn.Module) -> list[float]:
    """Every RatioLoss integral of `model`, outermost stage first (training-checkpoint state)."""
    return [float(m.integral) for m in model.modules() if isinstance(m, RatioLoss)]


def load_ratio_integrals(model: nn.Module, values: list[float]) -> None:
    """Restore what `ratio_integrals` returned (a checkpoint of the same layout)."""
    losses = [m for m in model.modules() if isinstance(m, RatioLoss)]
    if len(values) != len(losses):
        raise ValueError(f"checkpoint holds {len(values)} ratio-loss integrals, the model has {len(losses)}")
    for m, v in zip(losses, values):
        m.integral.fill_(v)


ALIGNMENT_KEYS = ("word_start_precision", "word_start_recall", "word_edge_precision", "word_edge_recall")


def boundary_alignment(b: torch.Tensor, starts: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """How chunk starts b [B, T] line up with word starts `starts` [B, T] over the real positions.

    word_start_*: a boundary counts only on a word's first byte (precision: boundaries there;
    recall: words whose first byte is one). word_edge_*: a boundary on the byte before a word's
    first byte counts too, since a chunk that starts at the space before a word ("_cat") cuts at
    the same word edge as one that starts at the word ("cat"); the space rule does the former.
    At an inner stage a position is an outer chunk, so "the byte before" is the chunk before.
    """
    b = b & real
    starts = starts & real
    before = F.pad(starts[:, 1:], (0, 1), value=False)  # the byte before a word start
    b_prev = F.pad(b[:, :-1], (1, 0), value=False)  # a boundary on the previous byte
    boundaries = b.sum().clamp(min=1)
    words = starts.sum().clamp(min=1)
    stats = {
        "word_start_precision": (b & starts).sum() / boundaries,
        "word_start_recall": (b & starts).sum() / words,
        "word_edge_precision": (b & (starts | before)).sum() / boundaries,
        "word_edge_recall": (starts & (b | b_prev)).sum() / words,
    }
    return {key: value.detach().float() for key, value in stats.items()}


def dechunk_step(zc: torch.Tensor, p: torch.Tensor, b: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """One position of `dechunk`: z [B, D] (float32 at least) after the inner output zc [B, D]
    where b [B] starts a chunk with probability p [B]; rows without a boundary keep z."""
    pz = p.clamp(P_CLAMP, 1 - P_CLAMP).to(z.dtype)[:, None]
    return torch.where(b[:, None], pz * zc.to(z.dtype) + (1 - pz) * z, z)


def routing_after_pass(
    state: RoutingState, h: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor, counts: torch.Tensor,
    z_last: torch.Tensor, entropy: Any = None,
) -> RoutingState:
    """The routing state after a pass over h [B, T, D] and ids [B, T] with `lengths` [B] real
    positions, `counts` [B] chunks started and the EMA value z_last [B, D] after them;
    `entropy`: the rule's own state after the pass (`Router.route`)."""
    rows = torch.arange(h.shape[0], device=h.device)
    last = (lengths - 1).clamp(min=0)
    moved = lengths > 0  # [B]
    return RoutingState(
        prev=torch.where(moved[:, None], h[rows, last].to(state.prev.dtype), state.prev),
        prev_id=torch.where(moved, ids[rows, last], state.prev_id),
        z=z_last.to(state.z.dtype), pos=state.pos + lengths, chunks=state.chunks + counts,
        entropy=entropy,
    )


def routing_after_step(
    state: RoutingState, h: torch.Tensor, ids: torch.Tensor, b: torch.Tensor, z: torch.Tensor,
    entropy: Any = None,
) -> RoutingState:
    """The routing state after one position: h [B, D], ids [B], boundaries b [B], EMA z [B, D],
    the rule's own state `entropy`."""
    return RoutingState(
        prev=h.to(state.prev.dtype), prev_id=ids, z=z, pos=state.pos + 1, chunks=state.chunks + b.long(),
        entropy=entropy,
    )
