"""Synthetic recall tasks over token ids, generated from a seeded numpy generator.

Every task makes `Batch`es: `inputs` [N, T], `targets` [N, T] (IGNORE where nothing is scored)
and `answers` [N, T] (which answer of its row a scored position belongs to, -1 elsewhere). A row's
answer is right when every one of its positions is predicted exactly; accuracy is the fraction of
right answers. Token tasks score one position per answer; `bytes_mqar` (bytelm.synth.bytes_task)
scores the bytes of a whole value as one answer.

- `mqar`: Zoology's multi-query associative recall (arXiv 2312.04927): P key-value pairs, then
  the P keys again in random order at slots of a query region drawn with power-law probability
  (Zoology's `power_a` = 0.01, so queries crowd toward the region's start); the rest of the
  region is random filler. Keys come from the lower half of the vocabulary, values from the
  upper half, both distinct within a row. The target at a query key is its value. With
  `train_pairs="mixed"` the training rows hold 1..P pairs (uniform per row) while evaluation
  keeps exactly P: rows with few pairs make the key-value binding easy to find, as Zoology's
  own training mixes several numbers of pairs (`for_training`).
- `copy`: a random string of 1..T/2 tokens, a separator, then the string again (teacher forced).
- `selective_copy`: Mamba's selective copying: K data tokens scattered among noise tokens, a
  separator, then the data tokens in order.
- `induction`: the single-token induction head: a trigger token appears once, followed by a
  random token; the sequence ends with the trigger and the target is that token.

Id 0 is padding or noise; the tasks' own ids fill the vocabulary above it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

IGNORE = -100
PAD = 0
POWER_A = 0.01


@dataclass
class Batch:
    """Examples as numpy arrays, all [N, T] int64."""

    inputs: np.ndarray
    targets: np.ndarray
    answers: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    def select(self, keep: np.ndarray) -> Batch:
        """The rows `keep` picks: a mask [N] or row indices."""
        return Batch(self.inputs[keep], self.targets[keep], self.answers[keep])

    @staticmethod
    def concat(parts: list[Batch]) -> Batch:
        return Batch(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("inputs", "targets", "answers")))


def one_answer_per_target(targets: np.ndarray) -> np.ndarray:
    """answers [N, T] for tasks where every scored position is its own answer."""
    scored = targets != IGNORE
    return np.where(scored, np.cumsum(scored, axis=1) - 1, -1)


@dataclass(frozen=True)
class Mqar:
    """Multi-query associative recall with `pairs` pairs in sequences of `seq_len` tokens."""

    pairs: int
    seq_len: int
    vocab_size: int = 256
    train_pairs: str = "fixed"  # "fixed": train on P pairs; "mixed": 1..P pairs per training row
    name = "mqar"

    def check(self) -> str | None:
        """Why this task cannot be built, or None."""
        if self.pairs < 1 or self.seq_len < 1:
            return "needs positive pairs and seq_len"
        if 4 * self.pairs > self.seq_len:
            return f"{self.pairs} pairs do not fit length {self.seq_len} (needs 4 x pairs <= length)"
        if self.pairs > self.vocab_size // 2 - 1:
            return f"{self.pairs} pairs need more than {self.vocab_size // 2 - 1} distinct keys"
        if self.train_pairs not in ("fixed", "mixed"):
            return f"train_pairs must be 'fixed' or 'mixed', got {self.train_pairs!r}"
        return None

    def for_training(self) -> Mqar | MixedPairs:
        """The task the training stream samples from."""
        return MixedPairs(self) if self.train_pairs == "mixed" else self

    @property
    def chance(self) -> float:
        return 1.0 / (self.vocab_size - self.vocab_size // 2)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        p, t, v = self.pairs, self.seq_len, self.vocab_size
        half = v // 2
        keys = _distinct(rng, n, p, 1, half)  # [N, P]
        values = _distinct(rng, n, p, half, v)
        context = np.stack([keys, values], axis=2).reshape(n, 2 * p)  # k0 v0 k1 v1 ...
        slots = (t - 2 * p) // 2
        weight = np.arange(1, slots + 1, dtype=np.float64) ** (POWER_A - 1)
        gaps = np.stack([rng.choice(slots, size=p, replace=False, p=weight / weight.sum()) for _ in range(n)])
        query_pos = 2 * p + 2 * gaps  # [N, P]
        inputs = rng.integers(1, v, size=(n, t))  # filler everywhere, then the pairs and queries
        inputs[:, : 2 * p] = context
        targets = np.full((n, t), IGNORE, dtype=np.int64)
        rows = np.arange(n)[:, None]
        inputs[rows, query_pos] = keys
        targets[rows, query_pos] = values
        return Batch(inputs.astype(np.int64), targets, one_answer_per_target(targets))

    def describe(self) -> dict[str, Any]:
        d = {"task": self.name, "pairs": self.pairs, "seq_len": self.seq_len, "vocab_size": self.vocab_size}
        return d if self.train_pairs == "fixed" else {**d, "train_pairs": self.train_pairs}


@dataclass(frozen=True)
class MixedPairs:
    """Training rows of `task` whose number of pairs is drawn uniformly from 1..task.pairs."""

    task: Mqar

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        counts = np.bincount(rng.integers(1, self.task.pairs + 1, size=n), minlength=self.task.pairs + 1)
        parts = [
            replace(self.task, pairs=p, train_pairs="fixed").sample(rng, int(k))
            for p, k in enumerate(counts) if k
        ]
        batch = Batch.concat(parts)
        return batch.select(rng.permutation(len(batch)))


@dataclass(frozen=True)
class Copy:
    """Copy a random string of 1..seq_len // 2 tokens after a separator."""

    seq_len: int
    vocab_size: int = 256
    name = "copy"

    def check(self) -> str | None:
        return None if self.seq_len >= 2 else "copy needs seq_len >= 2"

    @property
    def chance(self) -> float:
        return 1.0 / (self.vocab_size - 2)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        t, sep = self.seq_len, self.vocab_size - 1
        inputs = np.full((n, t), PAD, dtype=np.int64)
        targets = np.full((n, t), IGNORE, dtype=np.int64)
        for i, length in enumerate(rng.integers(1, t // 2 + 1, size=n)):
            s = rng.integers(1, sep, size=length)
            inputs[i, : 2 * length] = np.concatenate([s, [sep], s[:-1]])
            targets[i, length : 2 * length] = s
        return Batch(inputs, targets, one_answer_per_target(targets))

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "seq_len": self.seq_len, "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class SelectiveCopy:
    """Copy the `tokens` data tokens scattered among noise (id 0), in order, after a separator."""

    tokens: int
    seq_len: int
    vocab_size: int = 256
    name = "selective_copy"

    def check(self) -> str | None:
        if self.tokens < 1:
            return "selective_copy needs tokens >= 1"
        if 2 * self.tokens > self.seq_len:
            return f"{self.tokens} tokens do not fit length {self.seq_len} (needs 2 x tokens <= length)"
        return None

    @property
    def chance(self) -> float:
        return 1.0 / (self.vocab_size - 2)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        k, t, sep = self.tokens, self.seq_len, self.vocab_size - 1
        region = t - k + 1  # the context and the separator at its end, then k - 1 copied tokens
        inputs = np.full((n, t), PAD, dtype=np.int64)
        targets = np.full((n, t), IGNORE, dtype=np.int64)
        for i in range(n):
            data = rng.integers(1, sep, size=k)
            where = np.sort(rng.choice(region - 1, size=k, replace=False))
            inputs[i, where] = data
            inputs[i, region - 1] = sep
            inputs[i, region:] = data[:-1]
            targets[i, region - 1 :] = data
        return Batch(inputs, targets, one_answer_per_target(targets))

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "tokens": self.tokens, "seq_len": self.seq_len, "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class Induction:
    """A trigger, a token, random tokens, the trigger again: predict the token."""

    seq_len: int
    vocab_size: int = 256
    name = "induction"

    def check(self) -> str | None:
        return None if self.seq_len >= 4 else "induction needs seq_len >= 4"

    @property
    def chance(self) -> float:
        return 1.0 / (self.vocab_size - 2)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        t, trigger = self.seq_len, self.vocab_size - 1
        inputs = rng.integers(1, trigger, size=(n, t))
        at = rng.integers(0, t - 2, size=n)  # the first trigger; its token at `at + 1`
        rows = np.arange(n)
        inputs[rows, at] = trigger
        inputs[:, -1] = trigger
        targets = np.full((n, t), IGNORE, dtype=np.int64)
        targets[:, -1] = inputs[rows, at + 1]
        return Batch(inputs, targets, one_answer_per_target(targets))

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "seq_len": self.seq_len, "vocab_size": self.vocab_size}


def _distinct(rng: np.random.Generator, n: int, k: int, low: int, high: int) -> np.ndarray:
    """[n, k] ints from [low, high), distinct within each row."""
    return np.argsort(rng.random((n, high - low)), axis=1)[:, :k] + low


def accuracy(predictions: np.ndarray, batch: Batch) -> tuple[float, int]:
    """(fraction of answers predicted exactly at all their positions, number of answers).

    predictions [N, T]: the argmax id at each position (compared with `targets` where scored).
    """
    scored = batch.answers >= 0
    wrong = scored & (predictions != batch.targets)
    n_answers = batch.answers.max(axis=1) + 1  # [N]
    total = int(n_answers.sum())
    if total == 0:
        return 0.0, 0
    rows, answers = np.nonzero(wrong)
    missed = len(set(zip(rows.tolist(), batch.answers[rows, answers].tolist())))
    return 1.0 - missed / total, total


def row_keys(batch: Batch) -> list[bytes]:
    """One hashable key per example (its inputs and targets), to keep train and eval disjoint."""
    both = np.concatenate([batch.inputs, batch.targets], axis=1).astype(np.int64)
    return [row.tobytes() for row in both]


TOKEN_TASKS = {"mqar": Mqar, "copy": Copy, "selective_copy": SelectiveCopy, "induction": Induction}
