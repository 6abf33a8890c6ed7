"""The one contract both model kinds answer: `HybridLM` (bytes) and `BaselineLM` (BPE tokens).

Every consumer (generation, the lm-eval scorer, the benches, training summaries, releases) calls
models through this Protocol alone, so no caller inspects signatures, sniffs logit widths or
asks `hasattr`. Ids are the model's own: bytes (0-255, specials above) for the hybrid, token ids
for the baseline; what an id stands for as bytes is the codec's business (see
`bytelm.generation.Vocabulary`). The kind is `model.config.kind` ("hybrid" or "baseline").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class ModelOutput:
    """logits [B, T, V] and the model's auxiliary outputs (empty for the baseline)."""

    logits: torch.Tensor
    aux: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LanguageModel(Protocol):
    """A causal LM over its own ids, with incremental decoding and compute accounting.

    config: the model's `ModelConfig` or `BaselineConfig` (`kind`, `vocab_size`, ...).
    max_context: the most ids one sequence may hold, prompt and generated together: the
        baseline's `max_seq_len` (its KV cache and RoPE training length), None for the hybrid
        (its decoding state does not grow).
    """

    config: Any

    @property
    def max_context(self) -> int | None: ...

    def forward(self, ids: torch.Tensor) -> ModelOutput:
        """ids [B, T] -> ModelOutput(logits [B, T, V], aux)."""
        ...

    def allocate_state(
        self,
        batch_size: int,
        *,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The decoding state before any id for `batch_size` rows. `max_len` sizes a state that
        grows with the context (the baseline's KV cache; default `max_context`); a state of
        constant size ignores it."""
        ...

    def prefill(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Feed ids [B, T] after what `state` holds (None: a fresh state); logits [B, T, V]
        equal to the forward pass over everything fed so far, and the state after them."""
        ...

    def step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One id per row: ids [B] -> logits [B, V] and the state after it."""
        ...

    def compiled_step(self, ahead_of_time: bool = False) -> Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]:
        """`step` compiled, same inputs and outputs; build it once per decoder (its graphs are
        compiled on the first calls and kept). Each kind picks how its step is cut into graphs.
        `ahead_of_time`: the same graphs through torch.export and AOTInductor
        (bytelm.models.exported), called without dynamo's guards, instead of `torch.compile`."""
        ...

    def flops_per_byte(
        self, seq_len_bytes: int, compression: float | Sequence[float] | None = None
    ) -> float:
        """Analytic training FLOPs (forward + backward) per BYTE at windows of `seq_len_bytes`
        bytes. `compression`: what was actually seen instead of the configured value, bytes per
        chunk at each stage (hybrid) or bytes per token (baseline)."""
        ...

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; without the input embedding table when asked (the head stays)."""
        ...

    def optimizer_groups(self, weight_decay: float, lr: float) -> list[dict]:
        """AdamW parameter groups (dicts with "params", "lr", "weight_decay")."""
        ...
