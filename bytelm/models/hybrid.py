"""The hierarchical hybrid byte language model (H-Net style), on the pure-PyTorch path.

Design choices:
- Bytes 0-255 and specials (BOS/EOS/PAD) share one embedding; the head is untied.
- A `Stage` is encoder -> routing -> chunk -> inner (a Stage or the main Network) -> dechunk
  (EMA) -> + residual (zero-initialised linear, computed in float32 at least) -> decoder.
  Every network ends with RMSNorm; the outermost decoder's norm is the final norm.
- Inner levels may be wider: chunk vectors are widened with a learned tail (H-Net's padding)
  and the inner output is cut back to the outer width.
- The dechunked value is multiplied by a straight-through confidence that is exactly 1 in value,
  so decoding (which skips it) equals the forward pass.
- Every level (a `Stage`, or the innermost `Network`) answers `forward_level(x, ids, starts,
  lengths, state)` and `step_level(x, ids, state, commit)`, so no code branches on the kind of
  level. Forward, prefill and prefill-from-state are one code path (with or without a state);
  `step` is the per-byte recurrence. A batch whose rows start chunks at different bytes steps
  the inner level for every row and commits its state only where the row has a boundary; the
  dechunk EMA step and the routing state's bookkeeping live with the chunking
  (bytelm.layers.chunking).
- A stage's step is three pieces (`step_enter`, `step_inner`, `step_exit`) that `step_level`
  runs eagerly with the chunk-start check between them; `HybridLM.compiled_step` compiles them
  as two graphs (`step_skipping`), one for bytes without a chunk start.
- Parameters carry `_lr_multiplier` (per level) and `_no_weight_decay`; `optimizer_groups`
  builds the AdamW groups from them.

The stage itself, its state and its step pieces live in bytelm.models.stage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from bytelm.config import ModelConfig
from bytelm.layers.chunking import ALIGNMENT_KEYS, word_starts
from bytelm.layers.init import STD, reset_tree
from bytelm.layers.network import Network
from bytelm.models import ModelOutput
from bytelm.models.stage import Stage, StageState, StepEntry, level_spec, step_skipping


class HybridLM(nn.Module):
    """Byte embedding -> Stage (or a single network for a layout without stages) -> head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model[0]
        self.embedding = nn.Embedding(config.vocab_size, d)
        if config.n_stages:
            self.backbone: Network | Stage = Stage(config, 0)
        else:
            self.backbone = Network(config.levels[0]["main"], level_spec(config, 0))
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        self.init_weights()
        self.tag_parameters()

    def init_weights(self) -> None:
        """Initialise the whole model: every module's own `reset_parameters`, children first
        (projections N(0, 0.02), residual-stream outputs scaled down by depth, Mamba-2's dt and
        A, routing projections identity, encoder-decoder residuals zero)."""
        reset_tree(self)

    def reset_parameters(self) -> None:
        """The byte embedding and the head: N(0, 0.02)."""
        nn.init.normal_(self.embedding.weight, std=STD)
        nn.init.normal_(self.head.weight, std=STD)

    def tag_parameters(self) -> None:
        """Attach `_lr_multiplier` (by level: one per `inner.` in the name) and `_no_weight_decay`."""
        for name, param in self.named_parameters():
            level = name.count("inner.")
            param._lr_multiplier = self.config.lr_multiplier[level]
            param._no_weight_decay = param.dim() < 2 or name.startswith("embedding") or ".router." in name

    def optimizer_groups(self, weight_decay: float, lr: float) -> list[dict]:
        """AdamW parameter groups: one per (lr multiplier, decay or not); no decay on norms,
        biases, scalars per head, embeddings and routing projections."""
        self.tag_parameters()
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for param in self.parameters():
            if param.requires_grad:
                groups.setdefault((param._lr_multiplier, not param._no_weight_decay), []).append(param)
        return [
            {"params": params, "lr": lr * mult, "weight_decay": weight_decay if decay else 0.0,
             "lr_multiplier": mult}
            for (mult, decay), params in sorted(groups.items())
        ]

    @property
    def max_context(self) -> int | None:
        """No context limit: the decoding state does not grow with the bytes seen."""
        return None

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; without the byte embedding table when asked (the head stays)."""
        total = sum(p.numel() for p in self.parameters())
        return total - self.embedding.weight.numel() if exclude_embeddings else total

    def flops_per_byte(self, seq_len_bytes: int, compression: Sequence[float] | None = None) -> float:
        """Analytic forward + backward FLOPs per byte at windows of `seq_len_bytes` bytes;
        `compression`: bytes per chunk at each stage (default the config's targets); see
        bytelm.models.flops; an entropy stage adds its frozen LM's forward pass."""
        from bytelm.models.flops import hybrid_flops_per_byte

        # Only stage 0 may chunk by entropy (it needs bytes), so its router's cost is per byte.
        extra = self.backbone.router.flops_per_byte(seq_len_bytes) if self.config.n_stages else 0.0
        return hybrid_flops_per_byte(self.config, seq_len_bytes, compression) + extra

    def allocate_state(
        self,
        batch_size: int,
        *,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The zero decoding state for `batch_size` rows (the state before any byte); its size
        does not depend on the context, so `max_len` is ignored."""
        device = device or self.head.weight.device
        dtype = dtype or self.head.weight.dtype
        return self.backbone.allocate_state(batch_size, device, dtype)

    def _run(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, dict, Any]:
        x = self.embedding(ids)  # [B, T, D]
        y, stages, state = self.backbone.forward_level(x, ids, word_starts(ids), None, state)
        aux: dict[str, Any] = {"ratio_loss": sum((s["ratio_loss"] for s in stages), x.new_zeros(()))}
        for key in ("compression", "boundary_probs", "boundary_mask", "ratio_integral", *ALIGNMENT_KEYS):
            aux[key] = [s[key] for s in stages]
        return self.head(y), aux, state

    def forward(self, ids: torch.Tensor) -> ModelOutput:
        """ids [B, T] -> logits [B, T, V] and aux ("ratio_loss" already weighted; per stage lists
        "compression" (positions of the outer level per chunk), "ratio_integral" (the ratio
        loss's integral after this pass; 0 where the rule is not dynamic), "boundary_probs",
        "boundary_mask", and `layers.chunking.ALIGNMENT_KEYS`: word-start and word-edge precision /
        recall)."""
        logits, aux, _ = self._run(ids, None)
        return ModelOutput(logits, aux)

    def prefill(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits [B, T, V] for ids [B, T] and the state after them, continuing from `state`."""
        if state is None:
            state = self.allocate_state(ids.shape[0])
        logits, _, state = self._run(ids, state)
        return logits, state

    def step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One byte per row: ids [B] -> logits [B, V] and the next state."""
        x = self.embedding(ids)  # [B, D]
        y, state = self.backbone.step_level(x, ids, state)
        return self.head(y), state

    def compiled_step(self, ahead_of_time: bool = False) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]:
        """`step` as two compiled graphs with the chunk-start check between them (eager):
        `_step_outer` (embedding, the outer encoder and router, then the outer decoder, routing
        bookkeeping and head as if no chunk starts at the byte) and `_step_inner` (the inner
        levels, the dechunk, then the decoder and head again on the inner level's output). A byte
        without a chunk start, about three in four with a trained router, is one call; a byte
        with one throws the first graph's decoder pass away and runs the second. Each graph is a
        call of its own, so dynamo guards its modules by their dict tags, where resuming after a
        graph break inside one compiled step re-checks every module attribute the rest reads
        (README, Benchmarks). A layout without stages compiles `step` whole. `ahead_of_time`:
        the same graphs by AOTInductor, without dynamo's guards (bytelm.models.exported)."""
        from bytelm.models.compiled import compile_function

        if ahead_of_time:
            from bytelm.models.exported import ExportedHybridStep

            return ExportedHybridStep(self)

        if not self.config.n_stages:
            return compile_function(self.step)
        return functools.partial(
            step_skipping, compile_function(self._step_outer), compile_function(self._step_inner)
        )

    def _step_outer(self, ids: torch.Tensor, state: StageState) -> tuple[StepEntry, torch.Tensor, StageState]:
        """ids [B] -> the stage's entry (encoder and routing), and the logits [B, V] and state
        after the byte for rows where no chunk starts (the inner level skipped)."""
        entry = self.backbone.step_enter(self.embedding(ids), ids, state, None)
        y, after = self.backbone.step_exit(entry, ids, state.routing.z, state.inner, state, None)
        return entry, self.head(y), after

    def _step_inner(
        self, entry: StepEntry, ids: torch.Tensor, state: StageState, inner_commit: torch.Tensor | None
    ) -> tuple[torch.Tensor, StageState]:
        """After `_step_outer`'s entry: the inner level (committed where `inner_commit` [B],
        None: every row), the dechunk and the decoder: logits [B, V] and the state after the byte."""
        z, inner_state = self.backbone.step_inner(entry, ids, state, inner_commit)
        y, after = self.backbone.step_exit(entry, ids, z, inner_state, state, None)
        return self.head(y), after
