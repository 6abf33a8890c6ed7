"""`bytes_mqar`: associative recall in raw bytes, through the whole hierarchical model.

A row is text: P pairs `key value` whose keys and values are random lower-case letter strings of
3-8 bytes, each pair closed by punctuation and a space (`, `, `; `, `. `), then `? `, then the
P keys again in random order, each followed by a space and its value and punctuation. Nothing
marks where a word starts except the spaces and punctuation, so a chunker has to find them. The
bytes of each queried value form one answer, right only when every byte is predicted exactly
(teacher forced, which equals greedy decoding of the value). Rows are padded to `seq_len` with
PAD (258); only value bytes are scored.

`tokenize(batch, tokenizer)` turns the byte rows into BPE token rows for the baseline: the
scored tokens are those that cover a value byte, so the baseline is scored on the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bytelm.config import PAD_ID
from bytelm.synth.tasks import IGNORE, Batch

LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
PUNCT = [b", ", b"; ", b". "]
MIN_LEN, MAX_LEN = 3, 8


@dataclass(frozen=True)
class BytesMqar:
    """P key-value pairs of letter strings, then the P keys as queries, in `seq_len` bytes."""

    pairs: int
    seq_len: int
    name = "bytes_mqar"
    vocab_size = 260

    @property
    def max_row(self) -> int:
        """The longest row: each pair and each query is at most 8 + 1 + 8 + 2 bytes, plus `? `."""
        return 2 * self.pairs * (2 * MAX_LEN + 3) + 2

    def check(self) -> str | None:
        if self.pairs < 1:
            return "bytes_mqar needs pairs >= 1"
        if self.max_row > self.seq_len:
            return f"{self.pairs} byte pairs do not fit length {self.seq_len} (needs {self.max_row} bytes)"
        return None

    @property
    def chance(self) -> float:
        """A value is 3-8 letters, each 1 in 26: chance is about 26^-3 at best, so 0."""
        return 0.0

    def _word(self, rng: np.random.Generator) -> bytes:
        return LETTERS[rng.integers(0, 26, size=int(rng.integers(MIN_LEN, MAX_LEN + 1)))].tobytes()

    def sample_text(self, rng: np.random.Generator) -> tuple[bytes, list[tuple[int, int]]]:
        """One row's text and the (start, end) byte spans of the queried values."""
        keys: list[bytes] = []
        while len(keys) < self.pairs:
            word = self._word(rng)
            if word not in keys:
                keys.append(word)
        values = [self._word(rng) for _ in keys]
        text = b"".join(k + b" " + v + PUNCT[int(rng.integers(3))] for k, v in zip(keys, values))
        text += b"? "
        spans = []
        for j in rng.permutation(self.pairs):
            text += keys[j] + b" "
            spans.append((len(text), len(text) + len(values[j])))
            text += values[j] + PUNCT[int(rng.integers(3))]
        return text, spans

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        inputs = np.full((n, self.seq_len), PAD_ID, dtype=np.int64)
        targets = np.full((n, self.seq_len), IGNORE, dtype=np.int64)
        answers = np.full((n, self.seq_len), -1, dtype=np.int64)
        for i in range(n):
            text, spans = self.sample_text(rng)
            row = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
            inputs[i, : len(row)] = row
            for a, (start, end) in enumerate(spans):
                # the byte at position p is predicted at position p - 1
                targets[i, start - 1 : end - 1] = row[start:end]
                answers[i, start - 1 : end - 1] = a
        return Batch(inputs, targets, answers)

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "pairs": self.pairs, "seq_len": self.seq_len}


def row_text(batch: Batch, i: int) -> bytes:
    """The bytes of row i without its padding."""
    row = batch.inputs[i]
    return row[row < 256].astype(np.uint8).tobytes()


def tokenize(batch: Batch, tokenizer, seq_len: int, pad_id: int) -> Batch:
    """The byte rows of `batch` as token rows of `seq_len` ids (BPE), answers kept per value.

    A token is scored when it covers a value byte; its target is the token itself (predicted
    at the position before it), and it belongs to that value's answer.
    """
    n = len(batch)
    inputs = np.full((n, seq_len), pad_id, dtype=np.int64)
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    answers = np.full((n, seq_len), -1, dtype=np.int64)
    for i in range(n):
        ids = np.asarray(tokenizer.encode(row_text(batch, i)), dtype=np.int64)
        if len(ids) > seq_len:
            raise ValueError(f"a row of {len(ids)} tokens does not fit {seq_len}")
        ends = np.cumsum(tokenizer.token_bytes[ids])  # [N_tok] one past each token's last byte
        starts = ends - tokenizer.token_bytes[ids]
        inputs[i, : len(ids)] = ids
        byte_answer = np.full(batch.inputs.shape[1] + 1, -1, dtype=np.int64)
        scored = batch.answers[i] >= 0
        byte_answer[1:][scored] = batch.answers[i][scored]  # answer of the byte at each position
        for t in range(1, len(ids)):
            covered = byte_answer[starts[t] : ends[t]]
            hit = covered[covered >= 0]
            if len(hit):
                targets[i, t - 1] = ids[t]
                answers[i, t - 1] = hit[0]
    return Batch(inputs, targets, answers)
