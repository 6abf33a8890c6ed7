"""bytelm.generation, the one decoder: greedy equals the forward argmax for both model kinds;
seeds, top-k/top-p; stop strings held back; UTF-8 released whole; batches whose rows end at
different times; the baseline's context budget."""

import sys
from pathlib import Path

import pytest
import torch

from bytelm.config import EOS_ID, BaselineConfig
from bytelm.data.tokenizer import ByteCodec
from bytelm.errors import BytelmError
from bytelm.generation import (
    Completion,
    Decoder,
    Sampling,
    Vocabulary,
    decode,
    decode_text,
    sample_next,
)
from bytelm.models import build_model

sys.path.insert(0, str(Path(__file__).parent / "models"))
from hybrid_helpers import text_ids, tiny_model  # noqa: E402

BYTES = Vocabulary.of_codec(ByteCodec(), 260)


@pytest.fixture(autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_baseline(max_seq_len: int = 64):
    torch.manual_seed(0)
    cfg = BaselineConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_intermediate=64, max_seq_len=max_seq_len, bytes_per_token=3.5)
    return build_model(cfg).double().eval()


MODELS = {"hybrid": lambda: tiny_model(stages=2).eval(), "baseline": tiny_baseline}


class Scripted(torch.nn.Module):
    """A stand-in model that emits given byte sequences, one per row (then EOS), and counts its
    steps. Its state is the position of the next id."""

    def __init__(self, rows: list[bytes]) -> None:
        super().__init__()
        self.rows = [list(r) + [EOS_ID] * 50 for r in rows]
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.steps = 0

    max_context = None

    def _logits(self, t: int) -> torch.Tensor:
        out = torch.full((len(self.rows), 260), -10.0)
        for i, row in enumerate(self.rows):
            out[i, row[t]] = 10.0
        return out

    def allocate_state(self, batch_size, *, max_len=None, device=None, dtype=None):
        return 0

    def prefill(self, ids, state=None):
        return self._logits(0)[:, None].expand(-1, ids.shape[1], -1), 0

    def step(self, ids, state):
        self.steps += 1
        return self._logits(state + 1), state + 1


@pytest.mark.parametrize("kind", MODELS)
def test_greedy_equals_forward_argmax(kind):
    model = MODELS[kind]()
    ids = text_ids(2, 12) % 97  # [B, T] valid ids for both kinds
    with torch.no_grad():
        logits, state = model.prefill(ids)
        new, _ = decode(model.step, logits[:, -1], state, 8, lambda x: x.argmax(-1))  # [B, 8]
        expected = model(torch.cat([ids, new], 1)).logits[:, ids.shape[1] - 1 : -1].argmax(-1)
    assert torch.equal(new, expected)


def test_decoder_greedy_bytes_equal_forward_argmax():
    model = MODELS["hybrid"]()
    ids = text_ids(2, 9)
    got = Decoder(model, BYTES).generate(ids.tolist(), Sampling(max_bytes=10, temperature=0))
    seq = ids
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat([seq, model(seq).logits[:, -1:].argmax(-1)], 1)
    assert got == [bytes(row) for row in seq[:, 9:].tolist()]  # no EOS: tiny bytes model


def _ids(model, ids, sampling: Sampling) -> torch.Tensor:
    with torch.no_grad():
        logits, state = model.prefill(ids)
        return decode(model.step, logits[:, -1], state, 12, sampling.picker(ids.device))[0]


def test_seeded_sampling_is_reproducible():
    model = tiny_model(stages=1).eval()
    ids = text_ids(2, 6)
    a = _ids(model, ids, Sampling(temperature=2.0, seed=7))
    assert torch.equal(a, _ids(model, ids, Sampling(temperature=2.0, seed=7)))
    assert not torch.equal(a, _ids(model, ids, Sampling(temperature=2.0, seed=8)))
    greedy = _ids(model, ids, Sampling(temperature=0))
    assert torch.equal(greedy, _ids(model, ids, Sampling(temperature=1.0, top_k=1, seed=3)))
    assert torch.equal(greedy, _ids(model, ids, Sampling(temperature=1.0, top_p=1e-6, seed=3)))


def test_top_k_and_top_p_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(400, -1)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=2, generator=gen).tolist()) == {0, 1}
    assert set(sample_next(logits, 1.0, top_p=0.7, generator=gen).tolist()) == {0, 1}
    assert set(sample_next(logits, 1.0, top_p=0.85, generator=gen).tolist()) == {0, 1, 2}
    assert set(sample_next(logits, 1.0, generator=gen).tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        sample_next(logits, -1.0)


def _stream(rows: list[bytes], **sampling) -> tuple[list[bytes], list[tuple[int, str]], Scripted]:
    model = Scripted(rows)
    events: list[tuple[int, str]] = []
    out = Decoder(model, BYTES).generate(
        [[1, 2]] * len(rows), Sampling(temperature=0, **sampling),
        on_text=lambda i, t: events.append((i, t)), on_done=lambda i: events.append((i, None)),
    )
    return out, events, model


def test_stop_string_split_across_steps_is_held_back():
    out, events, _ = _stream([b"ab ENx EEND more"], max_bytes=100, stops=[b"END"])
    assert out == [b"ab ENx E"]
    streamed = ""
    for _, text in events[:-1]:
        streamed += text
        assert "ab ENx E".startswith(streamed)  # nothing printed that the stop later took back
    assert streamed == "ab ENx E" and events[-1] == (0, None)


def test_multibyte_character_split_across_steps_prints_whole():
    out, events, _ = _stream(["a€!".encode()], max_bytes=100)  # € is 3 bytes, 3 steps
    assert out == ["a€!".encode()]
    assert [t for _, t in events] == ["a", "€", "!", None]


def test_invalid_utf8_is_replaced_only_in_text():
    out, events, _ = _stream([b"\xffok\xe2\x82"], max_bytes=100)
    assert out == [b"\xffok\xe2\x82"]
    assert "".join(t for _, t in events if t) == "\ufffdok\ufffd"
    assert decode_text(out[0]) == "\ufffdok\ufffd"


def test_byte_budget_cuts_exactly():
    done = Completion(5)
    assert done.feed(b"ab\xe2\x82") == "ab" and not done.done
    assert done.feed(b"\xac\xe2\x82") == "€" and done.done
    assert bytes(done.data) == b"ab\xe2\x82\xac"


def test_batch_rows_end_at_different_times():
    rows = [b"hello world. more", b"short", b"a\xffb END c"]
    out, events, model = _stream(rows, max_bytes=40, stops=[b". ", b" END"])
    assert out == [b"hello world", b"short", b"a\xffb"]
    assert sorted(i for i, t in events if t is None) == [0, 1, 2]  # each row ends once
    assert model.steps == len(b"hello world. ") - 1  # decoding stops with the last row
    out, _, _ = _stream(rows, max_bytes=3)
    assert out == [b"hel", b"sho", b"a\xffb"]


def test_batch_equals_one_by_one():
    model = tiny_model(stages=1).eval()
    prompts = text_ids(3, 7).tolist() + [[104, 105]]
    greedy = Sampling(max_bytes=9, temperature=0)
    decoder = Decoder(model, BYTES)
    assert decoder.generate(prompts, greedy) == [decoder.generate([p], greedy)[0] for p in prompts]


def test_baseline_context_budget():
    model = tiny_baseline(max_seq_len=16)
    vocab = Vocabulary(tuple(bytes([65 + i % 26]) for i in range(97)), frozenset())
    decoder = Decoder(model, vocab)
    (out,) = decoder.generate([list(range(10))], Sampling(max_bytes=100, temperature=0))
    assert len(out) == 16 - 10 + 1  # the last id is never fed back
    with pytest.raises(BytelmError, match="the prompt is 17 ids; this model's context holds 16"):
        decoder.generate([list(range(17))], Sampling(max_bytes=4, temperature=0))
    hybrid = Decoder(MODELS["hybrid"](), BYTES)
    assert len(hybrid.generate([[104] * 40], Sampling(max_bytes=30, temperature=0))[0]) == 30
