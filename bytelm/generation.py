"""Decoding, the one home for both model kinds: prompt ids in, completion bytes and text out.

Any model of the contract (`bytelm.models.contract.LanguageModel`) decodes here; `bytelm
generate`, the lm-eval scorer's greedy path and `bytelm bench generate` all call this module.

- Ids are the model's own. What an id stands for in the output is a `Vocabulary`: a table of
  bytes per id (the byte itself for the hybrid, the token's bytes for the baseline, b"" for
  specials) and the ids that end a sequence (EOS). So one loop serves bytes and tokens alike.
- `sample_next`: greedy (temperature 0), temperature, top-k, top-p, from a seeded generator.
- `decode`: the loop. Ids go into a preallocated [B, max_new] buffer; per step it runs one pick
  and one model step, and calls back to the host only when someone watches the ids (text,
  stop strings, EOS). The step may be compiled (`compiled_step`: jit or ahead of time).
- `Completion`: one row's bytes on their way to text: stop strings matched on bytes, with the
  bytes that may still begin one held back; an incremental UTF-8 decoder that releases text
  only for complete characters (invalid bytes become U+FFFD, only at this edge); a byte budget.
- `Decoder.generate`: batches of prompts. Prompts of equal length in ids decode together; rows
  end at different times (EOS, a stop string, the byte budget) and a finished row keeps
  stepping with the batch, its ids ignored, until every row of the batch has ended.
- Context budget (`context_budget`): the baseline's `max_context` (max_seq_len) bounds prompt
  plus generated ids; generation stops at the budget, and a prompt longer than the context is a
  clear error. The hybrid has no budget: its state does not grow.
"""

from __future__ import annotations

import codecs
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bytelm.errors import BytelmError
from bytelm.models.contract import LanguageModel

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ids [B] from logits [B, V]: argmax when temperature == 0, else sampled after top-k/top-p."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # keep the smallest prefix reaching top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@dataclass(frozen=True)
class Vocabulary:
    """What each model id stands for in the output: its bytes, and the ids that end a row."""

    pieces: tuple[bytes, ...]  # [V] the bytes of each id (b"" for specials)
    ends: frozenset[int]  # ids that end a sequence (EOS), not part of the output

    @classmethod
    def of_codec(cls, codec: Any, vocab_size: int) -> Vocabulary:
        """The table of a codec (ByteCodec: identity on bytes; BpeTokenizer: token bytes) for a
        model of `vocab_size` outputs; ids past the codec's vocabulary stand for nothing."""
        pieces = tuple(
            bytes(codec.decode([i])) if i < codec.vocab_size else b"" for i in range(vocab_size)
        )
        eos = codec.eos_id
        return cls(pieces, frozenset({eos}) if eos >= 0 else frozenset())


@dataclass
class Sampling:
    """How to pick each next id, and when a completion ends.

    max_bytes: bytes per completion at most (None: no byte limit).
    max_ids: ids (decoding steps) per completion at most (None: max_bytes steps, which is
        what max_bytes bytes take at most: every id is one byte or a whole token, or ends).
    stops: byte strings that end a completion where they first appear (cut before them).
    """

    max_bytes: int | None = 256
    max_ids: int | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stops: Sequence[bytes] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_bytes is None and self.max_ids is None:
            raise ValueError("Sampling needs max_bytes or max_ids")
        if min(v for v in (self.max_bytes, self.max_ids) if v is not None) < 1:
            raise ValueError("max_bytes and max_ids must be >= 1")
        if not all(self.stops):
            raise ValueError("stop strings must not be empty")

    @property
    def steps(self) -> int:
        """Decoding steps per completion at most."""
        return min(v for v in (self.max_ids, self.max_bytes) if v is not None)

    def picker(self, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """logits [B, V] -> ids [B]: argmax, or sampling from a generator seeded once here."""
        if self.temperature == 0:
            return functools.partial(torch.argmax, dim=-1)
        generator = torch.Generator(device=device)
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return functools.partial(
            sample_next, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            generator=generator,
        )


class Completion:
    """The bytes of one sequence on their way to text: stop strings, byte budget, UTF-8 edge."""

    def __init__(self, max_bytes: int | None = None, stops: Sequence[bytes] = ()) -> None:
        self.max_bytes = max_bytes
        self.stops = [s for s in stops if s]
        self.data = bytearray()  # bytes released to the output so far
        self.done = False
        self._pending = b""  # bytes that may be the start of a stop string
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> str:
        """Take new bytes; return the text that is now certain to be part of the output."""
        if self.done:
            return ""
        pending = self._pending + chunk
        if self.stops:
            hits = [i for i in (pending.find(s) for s in self.stops) if i >= 0]
            if hits:
                pending, self.done = pending[: min(hits)], True
        if self.max_bytes is not None:
            room = self.max_bytes - len(self.data)
            if len(pending) >= room:
                pending, self.done = pending[:room], True
        if self.done:
            self._pending = b""
            return self._release(pending, final=True)
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if pending.endswith(s[:k])), default=0
        )
        self._pending = pending[len(pending) - hold :]
        return self._release(pending[: len(pending) - hold], final=False)

    def finish(self) -> str:
        """End the completion (end of sequence or of the step budget); flush what is held."""
        if self.done:
            return ""
        self.done = True
        pending, self._pending = self._pending, b""
        return self._release(pending, final=True)

    def _release(self, data: bytes, final: bool) -> str:
        self.data += data
        return self._decoder.decode(data, final=final)


def context_budget(model: LanguageModel, prompt_len: int, wanted: int) -> int:
    """How many ids may follow a prompt of `prompt_len` ids: `wanted`, cut to what the model's
    context (`max_context`) has left. The last id is never fed back, so a context of C holds
    C - prompt_len + 1 new ids; a prompt longer than the context is an error."""
    limit = model.max_context
    if limit is None:
        return wanted
    if prompt_len > limit:
        raise BytelmError(f"the prompt is {prompt_len} ids; this model's context holds {limit}")
    return min(wanted, limit - prompt_len + 1)


COMPILE_KINDS = ("jit", "aot")


def compiled_step(model: LanguageModel, kind: str = "jit") -> StepFn:
    """The model's compiled step (`model.compiled_step()`, which picks how the step is cut into
    graphs): "jit" by `torch.compile`, "aot" ahead of time by AOTInductor
    (bytelm.models.exported); falls back to eager, with a note, if no compiler works here."""
    from torch._inductor.exc import CppCompileError, InductorError

    if kind not in COMPILE_KINDS:
        raise BytelmError(f"compile must be one of {', '.join(COMPILE_KINDS)}, not {kind!r}")
    state = {"fn": model.compiled_step(ahead_of_time=kind == "aot")}

    def step(ids: torch.Tensor, st: Any) -> tuple[torch.Tensor, Any]:
        try:
            return state["fn"](ids, st)
        except (torch._dynamo.exc.BackendCompilerFailed, InductorError, CppCompileError) as err:
            print(f"compiled step unavailable ({type(err).__name__}); decoding eagerly",
                  file=sys.stderr)
            state["fn"] = model.step
            return model.step(ids, st)

    return step


def decode(
    step: StepFn,
    logits: torch.Tensor,
    state: Any,
    max_new: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
    watch: Callable[[torch.Tensor], bool] | None = None,
) -> tuple[torch.Tensor, Any]:
    """Up to `max_new` ids per row after `logits` [B, V] (the last prompt position's).

    Each id is picked, written into a preallocated buffer, shown to `watch` (which returns True
    once every row has ended) and, unless decoding ends there, fed to `step`. Returns the ids
    [B, n] and the state after all of them but the last (which is never fed).
    """
    out = torch.empty(logits.shape[0], max_new, dtype=torch.long, device=logits.device)  # [B, N]
    n = 0
    while True:
        nxt = pick(logits)  # [B]
        out[:, n] = nxt
        n += 1
        ended = watch is not None and watch(nxt)
        if ended or n == max_new:
            return out[:, :n], state
        logits, state = step(nxt, state)  # [B, V]


class _Rows:
    """Watches a batch's ids: turns them into each row's text and says when all rows ended."""

    def __init__(
        self,
        indices: list[int],
        completions: list[Completion],
        vocab: Vocabulary,
        emit: Callable[[int, str], None],
        on_done: Callable[[int], None],
    ) -> None:
        self.indices, self.completions = indices, completions
        self.pieces, self.ends = vocab.pieces, vocab.ends
        self.emit, self.on_done = emit, on_done
        self.live = list(range(len(indices)))  # batch rows still running

    def __call__(self, nxt: torch.Tensor) -> bool:
        ids = nxt.tolist()
        still = []
        for row in self.live:
            index, token = self.indices[row], ids[row]
            done = self.completions[index]
            text = done.finish() if token in self.ends else done.feed(self.pieces[token])
            if text:
                self.emit(index, text)
            if done.done:
                self.on_done(index)
            else:
                still.append(row)
        self.live = still
        return not still

    def close(self) -> None:
        """End the rows the step budget cut off."""
        for row in self.live:
            index = self.indices[row]
            text = self.completions[index].finish()
            if text:
                self.emit(index, text)
            self.on_done(index)
        self.live = []


class Decoder:
    """Batched generation with one model: its step (eager or compiled) and its vocabulary.

    Build it once and reuse it: a compiled step keeps its graphs between calls.
    """

    def __init__(
        self, model: LanguageModel, vocab: Vocabulary, *, compile_step: str | None = None
    ) -> None:
        self.model, self.vocab = model, vocab
        self.step: StepFn = compiled_step(model, compile_step) if compile_step else model.step

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: Sampling,
        on_text: Callable[[int, str], None] | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        """Complete every prompt (ids); `on_text(index, text)` as a completion's text firms up,
        `on_done(index)` when it ends. Returns each completion's bytes, in prompt order."""
        groups: dict[int, list[int]] = {}
        for index, ids in enumerate(prompts):
            if not len(ids):
                raise BytelmError(f"prompt {index + 1} is empty; give at least one id")
            groups.setdefault(len(ids), []).append(index)
        completions = [Completion(sampling.max_bytes, sampling.stops) for _ in prompts]
        rows_of = functools.partial(
            _Rows, completions=completions, vocab=self.vocab, emit=on_text or (lambda i, t: None),
            on_done=on_done or (lambda i: None),
        )
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for length, indices in groups.items():
                steps = context_budget(self.model, length, sampling.steps)
                ids = torch.tensor([list(prompts[i]) for i in indices], device=device)  # [B, T]
                state = self.model.allocate_state(len(indices), max_len=length + steps - 1)
                logits, state = self.model.prefill(ids, state)  # [B, T, V]
                rows = rows_of(indices)
                decode(self.step, logits[:, -1], state, steps, sampling.picker(device), rows)
                rows.close()
        return [bytes(c.data) for c in completions]


def decode_text(data: bytes) -> str:
    """Bytes to text for display; invalid UTF-8 becomes U+FFFD."""
    return data.decode("utf-8", errors="replace")
