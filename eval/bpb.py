"""Bits per byte on held-out bytes, the one metric comparable across byte and token models.

Both kinds score exactly the same bytes: a byte model sums the NLL of every byte, a token
baseline sums the NLL of the tokens that encode those bytes (its tokenizer round-trips exactly),
and both divide by the same byte count. The first id is conditioned on BOS, so every byte of the
slice is scored once (`Scorer.rolling_logprob`, windows of the model's training length with a
quarter of overlap).
"""

from __future__ import annotations

import numpy as np

from bytelm.errors import BytelmError
from bytelm.eval.loading import model_name, train_length
from bytelm.eval.scoring import Scorer, bits_per_byte


def utf8_slice(data: bytes, start: int = 0, size: int | None = None) -> bytes:
    """data[start : start+size] moved inward to whole UTF-8 characters."""
    end = len(data) if size is None else min(len(data), start + size)

    def is_continuation(i: int) -> bool:
        return i < len(data) and (data[i] & 0xC0) == 0x80

    while start < end and is_continuation(start):
        start += 1
    while end > start and is_continuation(end):
        end -= 1
    return data[start:end]


def text_bpb(scorer: Scorer, data: bytes) -> dict:
    """{"bpb", "bytes", "ids", "nll_nats"} of `data` under the scorer's model."""
    if not data:
        raise BytelmError("cannot compute bits per byte of an empty text")
    ids = scorer.encode(data)
    decoded = scorer.codec.decode(ids)
    decoded = decoded if isinstance(decoded, bytes) else decoded.encode("utf-8")
    if decoded != data:
        raise BytelmError("the tokenizer does not round-trip this text, so bytes would differ")
    nll = -scorer.rolling_logprob(ids)
    return {
        "bpb": bits_per_byte(nll, len(data)),
        "bytes": len(data),
        "ids": len(ids),
        "nll_nats": nll,
    }


def split_bytes(corpus: str, split: str) -> np.ndarray:
    """The prepared byte shard of `corpus` / `split` (prepared on first use)."""
    from bytelm.data.prepare import ensure_prepared
    from bytelm.data.shards import load_shard

    return load_shard(ensure_prepared(corpus), split, kind="bytes")


def make_scorer(loaded, max_length: int | None = None, device=None) -> Scorer:
    return Scorer(
        loaded.model, loaded.codec, max_length=max_length or train_length(loaded), device=device
    )


def evaluate_bpb(
    loaded,
    corpus: str = "gutenberg",
    split: str = "test",
    max_bytes: int | None = None,
    offset: int = 0,
    max_length: int | None = None,
) -> dict:
    """bpb of `loaded` on bytes [offset, offset+max_bytes) of a prepared split (all by default)."""
    if max_bytes is not None and max_bytes < 1:
        raise BytelmError(f"--max-bytes {max_bytes}: must be a positive number of bytes")
    if offset < 0:
        raise BytelmError(f"--offset {offset}: must be >= 0")
    shard = split_bytes(corpus, split)
    if offset >= len(shard):
        raise BytelmError(
            f"--offset {offset}: past the end of the {split} split ({len(shard):,} bytes)"
        )
    end = len(shard) if max_bytes is None else min(len(shard), offset + max_bytes + 4)
    data = utf8_slice(bytes(shard[offset:end]), 0, max_bytes)
    result = text_bpb(make_scorer(loaded, max_length), data)
    return {
        "model": model_name(loaded),
        "kind": getattr(loaded.codec, "kind", "bytes"),
        "corpus": corpus,
        "split": split,
        "offset": offset,
        "max_length": max_length or train_length(loaded),
        **result,
    }
