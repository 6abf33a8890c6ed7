"""Exact log-likelihood scoring over any bytelm model: byte (hybrid) or token (baseline).

One `Scorer` serves every evaluation in this package, so bits per byte, lm-eval's
`loglikelihood` / `loglikelihood_rolling` and the character and recall suites all rest on the
same arithmetic:

- log-probabilities are `log_softmax` over all V model outputs (special ids included), in fp64;
- requests are batched: sorted by length, right-padded (causal models never look right, so the
  padding cannot change a score) and cut into batches under a token budget;
- only the positions that predict continuation ids reach the softmax, so a 16 KB context with a
  3-byte answer costs one forward pass and a [3, V] softmax;
- a sequence longer than `max_length` is scored in windows: every target is scored exactly once,
  with at least `context` ids of left context when the text has them.

Empty contexts are conditioned on the codec's BOS id (`prefix_id`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bytelm.errors import BytelmError
from bytelm.generation import Decoder, Sampling, Vocabulary

BYTE_BOS = 256  # ByteCodec's BOS id (bytes are 0..255, specials sit above)


def prefix_id(codec) -> int:
    """The id that conditions an empty context: the codec's BOS."""
    for name in ("bos_id", "BOS", "bos"):
        value = getattr(codec, name, None)
        if isinstance(value, int) and value >= 0:
            return value
    if getattr(codec, "kind", "bytes") == "bytes":
        return BYTE_BOS
    raise BytelmError("the tokenizer has no BOS id to condition an empty context on")


@dataclass(frozen=True)
class Window:
    """One forward pass of a rolling evaluation: inputs seq[start:end], scores targets from `score_from`."""

    start: int  # first input index into the sequence
    end: int  # one past the last input index (targets are seq[start+1 : end+1])
    score_from: int  # absolute index of the first scored target


def rolling_windows(n: int, max_length: int, context: int) -> Iterator[Window]:
    """Windows that score targets seq[1..n-1] of a length-n sequence exactly once.

    Each window feeds at most `max_length` inputs; after the first, each keeps `context` inputs
    of overlap as left context, so a window scores `max_length - context` new targets.
    """
    if max_length < 1 or not 0 <= context < max_length:
        raise BytelmError(f"need 0 <= context < max_length, got {context} and {max_length}")
    stride = max_length - context
    target = 1  # next target index to score
    while target < n:
        end = min(target - 1 + (max_length if target == 1 else stride), n - 1)
        start = max(0, end - max_length)
        yield Window(start=start, end=end, score_from=target)
        target = end + 1


class Scorer:
    """Batched exact log-likelihoods for a model and its codec.

    model: a bytelm model (`bytelm.models.contract.LanguageModel`: forward, prefill, step).
    codec: ByteCodec or BpeTokenizer (`encode`, `decode`, `kind`).
    max_length: the most ids one forward pass sees (longer requests are windowed or truncated).
    token_budget: padded ids per forward pass (batch size x longest sequence).
    share_min: contexts at least this long, shared by several short continuations, are
        prefilled once and the continuations stepped (see `_score_shared_prefixes`).
    """

    def __init__(
        self,
        model,
        codec,
        max_length: int = 2048,
        token_budget: int = 16384,
        max_batch: int = 64,
        device: str | torch.device | None = None,
        share_min: int = 1024,
    ) -> None:
        self.model = model
        self.codec = codec
        self.max_length = int(max_length)
        self.token_budget = int(token_budget)
        self.max_batch = int(max_batch)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.truncated = 0  # requests whose context was cut on the left to fit max_length
        self.share_min = share_min
        self._decoder: Decoder | None = None  # built on first use (the vocabulary table)

    # ---------------------------------------------------------------- encoding
    def encode(self, text: str | bytes) -> list[int]:
        return list(self.codec.encode(text))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Ids of (context, continuation) as lm-eval's causal models split them.

        Trailing whitespace of the context moves to the continuation (lm-eval's convention, so
        BPE sees " word" as it was trained); the pair is encoded jointly and split at the
        context's length, falling back to separate encoding when the joint split disagrees.
        An empty context becomes the BOS id.
        """
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if not context:
            return [prefix_id(self.codec)], self.encode(continuation)
        ctx = self.encode(context)
        whole = self.encode(context + continuation)
        if whole[: len(ctx)] == ctx:
            return ctx, whole[len(ctx) :]
        return ctx, self.encode(continuation)

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def score_ids(
        self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]
    ) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context), continuation is the greedy one) per request.

        Each request is (context ids, continuation ids) with a non-empty context. Contexts
        longer than max_length - len(continuation) lose their left part (counted in
        `self.truncated`).
        """
        items: list[tuple[list[int], int]] = []  # (ids, n_continuation)
        for ctx, cont in requests:
            if not ctx:
                raise BytelmError("an empty context cannot be scored: prefix it with BOS")
            if not cont:
                items.append(([], 0))
                continue
            ids = list(ctx) + list(cont)
            keep = self.max_length + 1
            if len(ids) > keep:
                if len(cont) >= keep:
                    raise BytelmError(
                        f"a continuation of {len(cont)} ids does not fit max_length {self.max_length}"
                    )
                ids = ids[-keep:]
                self.truncated += 1
            items.append((ids, len(cont)))
        results: list[tuple[float, bool]] = [(0.0, True)] * len(items)
        pending = self._score_shared_prefixes(items, results)
        order = sorted(pending, key=lambda i: -len(items[i][0]))
        for batch in self._batches(order, lambda i: len(items[i][0]) - 1):
            rows = [items[i] for i in batch]
            scores = self._score_rows([ids for ids, _ in rows], [len(ids) - n for ids, n in rows])
            for i, score in zip(batch, scores):
                results[i] = score
        return results

    def _score_shared_prefixes(
        self, items: list[tuple[list[int], int]], results: list[tuple[float, bool]]
    ) -> list[int]:
        """Score requests that share a long context through prefill + steps; return the rest.

        Several choices after one long context (recall prompts of 16 KB) would otherwise cost
        a full forward pass each. Here the context is prefilled once, and each continuation is
        fed after a copy of that state. Used only for contexts of at
        least `share_min` ids followed by continuations at most 1/8 as long.
        """
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ids, n) in enumerate(items):
            if n:
                groups.setdefault(tuple(ids[:-n]), []).append(i)
        pending = []
        for ctx, members in groups.items():
            longest = max(items[i][1] for i in members)
            if len(members) > 1 and len(ctx) >= max(self.share_min, 8 * longest):
                for i, score in zip(
                    members,
                    self._score_after(list(ctx), [items[i][0][len(ctx) :] for i in members]),
                ):
                    results[i] = score
            else:
                pending += members
        return pending

    def _score_after(self, ctx: list[int], conts: list[list[int]]) -> list[tuple[float, bool]]:
        """(log p(cont | ctx), greedy) for each continuation, prefilling ctx once.

        Each continuation is one more prefill from a copy of the context's state, so its ids
        run as one forward pass rather than one decoding step each.
        """
        logits, state = self.model.prefill(
            torch.tensor([ctx], dtype=torch.long, device=self.device)
        )
        first = logits[:, -1]  # [1, V]
        out = []
        for cont in conts:
            rows = [first]
            if len(cont) > 1:
                more, _ = self.model.prefill(
                    torch.tensor([cont[:-1]], dtype=torch.long, device=self.device),
                    copy.deepcopy(state),
                )
                rows.append(more[0])  # [len(cont) - 1, V]
            logp = F.log_softmax(torch.cat(rows).double(), dim=-1)  # [len(cont), V]
            targets = torch.tensor(cont, device=logp.device)
            total = float(logp.gather(1, targets[:, None]).sum())
            out.append((total, bool((logp.argmax(-1) == targets).all())))
        return out

    @torch.no_grad()
    def rolling_logprob(self, ids: Sequence[int], context: int | None = None) -> float:
        """Sum of log p(id_t | id_<t) over every id of `ids`, the first conditioned on BOS.

        Longer sequences are scored in `rolling_windows` with `context` ids of overlap
        (default max_length // 4).
        """
        seq = [prefix_id(self.codec)] + list(ids)
        ctx = self.max_length // 4 if context is None else context
        windows = list(rolling_windows(len(seq), self.max_length, ctx))
        total = 0.0
        for batch in self._batches(
            list(range(len(windows))), lambda i: windows[i].end - windows[i].start
        ):
            rows = [seq[windows[i].start : windows[i].end + 1] for i in batch]
            firsts = [windows[i].score_from - windows[i].start for i in batch]
            total += sum(lp for lp, _ in self._score_rows(rows, firsts))
        return total

    def _batches(self, order: list[int], length) -> Iterator[list[int]]:
        """Cut `order` (best sorted longest first) into batches whose padded size fits the budget."""
        batch: list[int] = []
        longest = 0
        for i in order:
            grown = max(longest, length(i))
            if batch and (
                (len(batch) + 1) * grown > self.token_budget or len(batch) >= self.max_batch
            ):
                yield batch
                batch, grown = [], length(i)
            batch.append(i)
            longest = grown
        if batch:
            yield batch

    def _score_rows(self, rows: list[list[int]], firsts: list[int]) -> list[tuple[float, bool]]:
        """Score targets rows[b][firsts[b]:] given the ids before them, in one forward pass.

        rows[b] holds inputs and targets together: inputs rows[b][:-1], targets rows[b][1:].
        """
        width = max(len(r) for r in rows) - 1
        inputs = torch.zeros(len(rows), width, dtype=torch.long)  # [B, T] right-padded
        for b, r in enumerate(rows):
            inputs[b, : len(r) - 1] = torch.tensor(r[:-1], dtype=torch.long)
        logits = self.model(inputs.to(self.device)).logits  # [B, T, V]
        out = []
        for b, r in enumerate(rows):
            pos = torch.arange(firsts[b] - 1, len(r) - 1, device=logits.device)
            target = torch.tensor(r[firsts[b] :], dtype=torch.long, device=logits.device)
            logp = F.log_softmax(logits[b, pos].double(), dim=-1)  # [N, V]
            picked = logp.gather(-1, target[:, None])[:, 0]  # [N]
            greedy = bool((logp.argmax(-1) == target).all())
            out.append((float(picked.sum()), greedy))
        return out

    # ---------------------------------------------------------------- generation
    def greedy(self, context: str, until: Sequence[str], max_new: int) -> str:
        """Greedy continuation of `context` (at most `max_new` ids), cut before the first stop
        string; decoded by `bytelm.generation`, the decoder `bytelm generate` uses."""
        ids = self.encode(context) if context else [prefix_id(self.codec)]
        if len(ids) > self.max_length - max_new:
            ids = ids[-max(1, self.max_length - max_new) :]
            self.truncated += 1
        if self._decoder is None:
            vocab = Vocabulary.of_codec(self.codec, self.model.config.vocab_size)
            self._decoder = Decoder(self.model, vocab)
        stops = [s.encode("utf-8") for s in until if s]
        sampling = Sampling(max_bytes=None, max_ids=max_new, temperature=0.0, stops=stops)
        (out,) = self._decoder.generate([ids], sampling)
        return out.decode("utf-8", errors="replace")


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Summed negative log-likelihood in nats over n bytes -> bits per byte."""
    return nll_nats / max(n_bytes, 1) / math.log(2)
