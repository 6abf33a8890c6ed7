"""Stand-in models with the bytelm model contract, for exact checks of the evaluation code.

`StandIn` answers `bytelm.models.contract.LanguageModel` for any `forward`: its decoding state
is the ids fed so far, and `prefill`/`step` rerun the forward pass over all of them.

- `UniformModel`: logits all zero, so every id has probability exactly 1/V.
- `TrieModel`: knows a set of gold texts; wherever the bytes so far end with a prefix of one,
  the gold next byte gets logit +BOOST (oracle) or -BOOST (anti-oracle); everywhere else uniform.
  An oracle therefore prefers the gold continuation of every item it knows and an anti-oracle
  avoids it, which checks gold labels end to end through lm-eval.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from bytelm.data.tokenizer import ByteCodec

VOCAB = 260
BOOST = 1e4


def loaded(model: nn.Module, codec=None, **meta) -> SimpleNamespace:
    """A LoadedModel-like bundle for a stand-in model."""
    return SimpleNamespace(
        model=model, codec=codec or ByteCodec(), config=model.config, meta=meta, path="stand-in"
    )


class StandIn(nn.Module):
    """The contract around a subclass's `forward`; `anchor` gives the model a device."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.config = SimpleNamespace(kind="hybrid", vocab_size=vocab)
        self.anchor = nn.Parameter(torch.zeros(()))

    @property
    def max_context(self) -> int | None:
        return None

    def allocate_state(self, batch_size: int, *, max_len=None, device=None, dtype=None) -> Any:
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device or self.anchor.device)

    def prefill(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        seen = torch.cat([self.allocate_state(ids.shape[0]) if state is None else state, ids], 1)
        return self(seen).logits[:, -ids.shape[1] :], seen

    def step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        logits, state = self.prefill(ids[:, None], state)
        return logits[:, 0], state

    def compiled_step(self, ahead_of_time: bool = False):
        return self.step

    def flops_per_byte(self, seq_len_bytes: int, compression=None) -> float:
        return 0.0

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return 0

    def optimizer_groups(self, weight_decay: float, lr: float) -> list[dict]:
        return [{"params": list(self.parameters()), "lr": lr, "weight_decay": weight_decay}]


class UniformModel(StandIn):
    def __init__(self, vocab: int = VOCAB) -> None:
        super().__init__(vocab)

    def forward(self, ids: torch.Tensor) -> SimpleNamespace:
        logits = torch.zeros(*ids.shape, self.vocab) + self.anchor  # [B, T, V]
        return SimpleNamespace(logits=logits, aux={})


class TrieModel(StandIn):
    """Oracle (sign=+1) or anti-oracle (sign=-1) over the UTF-8 bytes of `gold_texts`.

    A gold text may start anywhere in the input (few-shot prompts put other text first); the
    next gold byte is pushed once at least MIN_MATCH bytes of it have matched.
    """

    MIN_MATCH = 8

    def __init__(
        self, gold_texts: list[str], sign: float = 1.0, vocab: int = VOCAB, boost: float = BOOST
    ) -> None:
        super().__init__(vocab)
        self.push = sign * boost
        self.root: dict = {}
        for text in gold_texts:
            node = self.root
            for b in text.encode("utf-8"):
                node = node.setdefault(b, {})

    def forward(self, ids: torch.Tensor) -> SimpleNamespace:
        logits = torch.zeros(*ids.shape, self.vocab)  # [B, T, V]
        for b, row in enumerate(ids.tolist()):
            active: list[tuple[dict, int]] = []  # (trie node, matched bytes)
            for t, byte in enumerate(row):
                active = [(n[byte], d + 1) for n, d in active + [(self.root, 0)] if byte in n]
                for node, depth in active:
                    if depth >= self.MIN_MATCH:
                        for nxt in node:
                            logits[b, t, nxt] = self.push
        return SimpleNamespace(logits=logits + self.anchor, aux={})
