"""The tokenized baseline: a Llama-style decoder over SentencePiece BPE tokens.

Design choices, kept as plain as the comparison needs:
- pre-norm blocks, RMSNorm, rotary position embeddings (RoPE), grouped-query causal attention
  through `scaled_dot_product_attention`, SwiGLU MLP, untied input and output embeddings;
- no biases, no dropout, so a run is a pure function of its seed and data order;
- a KV cache (`BaselineState`) for decoding; `prefill` then `step` give the same next-token
  distribution as `forward`; decoding itself is `bytelm.generation`, shared with the hybrid;
- `flops_per_byte(seq_len_bytes)` is `bytelm.models.flops.baseline_flops_per_byte`: forward +
  backward FLOPs per token (3x the forward matmuls, causal attention at its mean context) at
  windows of `seq_len_bytes / config.bytes_per_token` tokens, divided by the bytes per token,
  counted like the hybrid so that recipe pairs compare like with like.

It answers the contract of both model kinds (`bytelm.models.contract.LanguageModel`):
`forward(ids) -> ModelOutput(logits, aux={})`, `allocate_state`, `prefill`, `step`,
`flops_per_byte`, `num_parameters`, `optimizer_groups`, `max_context`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bytelm.layers.attention import rope
from bytelm.layers.mlp import SwiGLU
from bytelm.layers.norm import RMSNorm
from bytelm.models import ModelOutput


class CausalSelfAttention(nn.Module):
    """Grouped-query causal attention with RoPE; writes into a KV cache when given one."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, rope_base: float) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.rope_base = rope_base
        self.wq = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.wkv = nn.Linear(d_model, 2 * n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        start: int = 0,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`x [B, T, D]` at positions start..start+T-1; `cache` = (k, v) `[B, Hkv, Tmax, hd]`."""
        B, T, _ = x.shape
        pos = torch.arange(start, start + T, device=x.device).expand(B, T)  # [B, T]
        q = rope(self.wq(x).view(B, T, self.n_heads, self.head_dim), pos, self.rope_base)
        k, v = self.wkv(x).view(B, T, 2, self.n_kv_heads, self.head_dim).unbind(2)
        k = rope(k, pos, self.rope_base)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H or Hkv, T, hd]
        if cache is not None:
            cache[0][:, :, start : start + T] = k
            cache[1][:, :, start : start + T] = v
            k, v = cache[0][:, :, : start + T], cache[1][:, :, : start + T]
        if T == 1:
            mask, causal = None, False  # one query sees every cached key
        elif start == 0:
            mask, causal = None, True
        else:  # chunked prefill after earlier tokens: query i sees keys 0..start+i
            keys = torch.arange(start + T, device=x.device)
            mask = keys[None, :] <= (start + torch.arange(T, device=x.device))[:, None]
            causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=self.n_kv_heads != self.n_heads
        )  # [B, H, T, hd]
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    """Pre-norm residual block: attention then MLP."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.rope_base)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg.d_model, cfg.d_intermediate)

    def forward(self, x: torch.Tensor, start: int = 0, cache=None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), start, cache)
        return x + self.mlp(self.mlp_norm(x))


@dataclass
class BaselineState:
    """Decoding state: per-layer key/value caches `[B, Hkv, max_len, hd]` and the next position."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    pos: int = 0

    @property
    def max_len(self) -> int:
        return self.keys[0].shape[2]


class BaselineLM(nn.Module):
    """Llama-style token LM built from a `BaselineConfig` (see the module docstring)."""

    def __init__(self, config) -> None:
        super().__init__()
        if config.d_model % config.n_heads or config.n_heads % config.n_kv_heads:
            raise ValueError("d_model must divide by n_heads and n_heads by n_kv_heads")
        if (config.d_model // config.n_heads) % 2:
            raise ValueError("the head dimension must be even for RoPE")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) weights; residual output projections scaled by 1/sqrt(2 n_layers)."""
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("attn.wo.weight", "mlp.w_out.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, std=std)

    def _run(self, ids: torch.Tensor, start: int, state: BaselineState | None) -> torch.Tensor:
        x = self.embed(ids)  # [B, T, D]
        for i, block in enumerate(self.blocks):
            cache = None if state is None else (state.keys[i], state.values[i])
            x = block(x, start, cache)
        return self.head(self.norm(x))  # [B, T, V]

    def forward(self, ids: torch.Tensor) -> ModelOutput:
        """Next-token logits `[B, T, V]` for token ids `[B, T]`; no auxiliary outputs."""
        if ids.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {ids.shape[1]} tokens > max_seq_len {self.config.max_seq_len}")
        return ModelOutput(logits=self._run(ids, 0, None), aux={})

    # ---- inference -------------------------------------------------------------------------

    @property
    def max_context(self) -> int:
        """Tokens one sequence may hold: the RoPE training length `max_seq_len`."""
        return self.config.max_seq_len

    def allocate_state(
        self,
        batch_size: int,
        *,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> BaselineState:
        """An empty KV cache for `batch_size` sequences of up to `max_len` tokens (default
        max_seq_len; a larger one decodes past the trained length)."""
        ref = self.head.weight
        shape = (
            batch_size,
            self.config.n_kv_heads,
            max_len or self.config.max_seq_len,
            self.config.d_model // self.config.n_heads,
        )
        kw = {"device": device or ref.device, "dtype": dtype or ref.dtype}
        n = self.config.n_layers
        return BaselineState([torch.zeros(shape, **kw) for _ in range(n)],
                             [torch.zeros(shape, **kw) for _ in range(n)])

    def prefill(
        self, ids: torch.Tensor, state: BaselineState | None = None
    ) -> tuple[torch.Tensor, BaselineState]:
        """Feed `ids [B, T]` after what `state` holds; logits `[B, T, V]` and the state."""
        if state is None:
            state = self.allocate_state(ids.shape[0])
        if state.pos + ids.shape[1] > state.max_len:
            raise ValueError(f"the KV cache holds {state.max_len} tokens; context is full")
        logits = self._run(ids, state.pos, state)
        state.pos += ids.shape[1]
        return logits, state

    def step(self, ids_t: torch.Tensor, state: BaselineState) -> tuple[torch.Tensor, BaselineState]:
        """One decoding step for ids `[B]`: logits `[B, V]` and the advanced state."""
        logits, state = self.prefill(ids_t[:, None], state)
        return logits[:, 0], state

    def compiled_step(
        self, ahead_of_time: bool = False
    ) -> Callable[[torch.Tensor, BaselineState], tuple[torch.Tensor, BaselineState]]:
        """`step` compiled whole, one graph per call: by `torch.compile`
        (bytelm.models.compiled.compile_function), or ahead of time with the position as a
        dynamic size (bytelm.models.exported.ExportedBaselineStep)."""
        if ahead_of_time:
            from bytelm.models.exported import ExportedBaselineStep

            return ExportedBaselineStep(self)
        from bytelm.models.compiled import compile_function

        return compile_function(self.step)

    # ---- accounting ------------------------------------------------------------------------

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; without the input embedding table when asked (the head stays)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if exclude_embeddings else n

    def flops_per_byte(self, seq_len_bytes: int, compression: float | None = None) -> float:
        """Training FLOPs per byte at windows of `seq_len_bytes` bytes (bytelm.models.flops).

        The windows hold `round(seq_len_bytes / config.bytes_per_token)` tokens, as the data
        module cuts them; `compression` (bytes per token actually seen) replaces
        `config.bytes_per_token` in the per-byte division.
        """
        from bytelm.models.flops import baseline_flops_per_byte

        return baseline_flops_per_byte(self.config, seq_len_bytes, compression)

    def optimizer_groups(self, weight_decay: float, lr: float) -> list[dict]:
        """AdamW groups: matrices decay, norms gains and embeddings do not."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.dim() >= 2 and name != "embed.weight" else no_decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr},
        ]
