"""Codecs: exact byte round trips, token shards that decode to the byte shards, honest byte counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bytelm.data.shards import load_shard, read_manifest
from bytelm.data.splits import SPLITS
from bytelm.data.tokenizer import BOS, BYTE_VOCAB, BpeTokenizer, ByteCodec, segments, train_bpe
from bytelm.errors import BytelmError

AWKWARD = [
    b"",
    b"  leading and trailing spaces  ",
    b"tabs\tand\r\ncarriage returns\n\n\n",
    b"NUL \x00 and 0xFF \xff and a broken \xe2\x82 sequence \xc0\xaf",
    "SentencePiece's own marker \u2581 and \u2581\u2581 runs".encode(),
    "caf\u00e9 \u4e2d\u6587 \U0001f600".encode(),
    bytes(range(256)),
]


def test_byte_codec_round_trips_and_counts() -> None:
    codec = ByteCodec()
    data = os.urandom(1000)
    assert codec.decode(codec.encode(data)) == data
    assert codec.encode("é") == [0xC3, 0xA9]
    assert codec.decode([BOS, 104, 105, codec.eos_id]) == b"hi"
    assert codec.decode(np.array([104, 105], dtype=np.uint16)) == codec.decode(iter([104, 105]))
    assert codec.token_bytes.sum() == BYTE_VOCAB and codec.token_bytes[BOS] == 0


def test_bpe_round_trips_the_val_split(shakespeare_bpe: Path) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    text = np.asarray(load_shard(shakespeare_bpe, "val"))[:200_000].tobytes()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.sp.decode(ids) == text.decode("utf-8")  # SentencePiece agrees on plain text
    assert len(ids) < len(text) / 2  # merges happened
    assert int(tok.token_bytes[ids].sum()) == len(text)


@pytest.mark.parametrize("data", AWKWARD, ids=range(len(AWKWARD)))
def test_bpe_round_trips_any_bytes(shakespeare_bpe: Path, data: bytes) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    ids = tok.encode(data)
    assert tok.decode(ids) == data
    assert int(tok.token_bytes[ids].sum()) == len(data)
    assert tok.decode(tok.encode(data.decode("utf-8", "surrogateescape"))) == data


def test_bpe_random_bytes_round_trip(shakespeare_bpe: Path) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    data = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    assert tok.decode(tok.encode(data)) == data


def test_token_shards_decode_to_the_byte_shards(shakespeare_bpe: Path) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    manifest = read_manifest(shakespeare_bpe)
    info = manifest["tokenizer"]
    assert info["vocab_size"] == tok.vocab_size == 1024 and info["dtype"] == "uint16"
    for split in SPLITS:
        tokens = load_shard(shakespeare_bpe, split, "tokens")
        data = load_shard(shakespeare_bpe, split)
        assert tokens.dtype == np.uint16 and len(tokens) == info["tokens"][split]
        assert int(tok.token_bytes[tokens].sum()) == len(data)
        assert info["bytes_per_token"][split] == round(len(data) / len(tokens), 4)
    val = load_shard(shakespeare_bpe, "val", "tokens")
    assert tok.decode(val) == np.asarray(load_shard(shakespeare_bpe, "val")).tobytes()


def test_token_bytes_match_each_piece(shakespeare_bpe: Path) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    assert tok.token_bytes[:3].tolist() == [0, 0, 0]  # unk, bos, eos
    assert tok.token_bytes[3 : 3 + 256].tolist() == [1] * 256  # byte fallback pieces
    for i in range(259, tok.vocab_size, 97):
        assert tok.token_bytes[i] == len(tok.decode([i])) > 0


def test_segments_cover_the_text() -> None:
    text = "para one\nline\n\n\npara two " + "x" * 9000 + "\n" + "short line\n" * 500
    pieces = segments(text)
    assert "".join(pieces) == text
    assert max(map(len, pieces)) <= 4096
    assert pieces[0] == "para one\nline\n\n\n"


def test_training_is_deterministic(data_dir: str, tmp_path: Path) -> None:
    sample = (Path(data_dir) / "tinyshakespeare" / "input.txt").read_bytes()[:300_000]
    train_bpe(sample, 512, tmp_path / "a.model")
    train_bpe(sample, 512, tmp_path / "b.model")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()


def test_vocab_the_text_cannot_support(tmp_path: Path) -> None:
    with pytest.raises(BytelmError, match="cannot train a BPE vocabulary of 5000 on this text"):
        train_bpe(b"a tiny text, far too small for many merges\n" * 3, 5000, tmp_path / "m.model")
    assert list(tmp_path.iterdir()) == []


def test_missing_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(BytelmError, match="not found"):
        BpeTokenizer(tmp_path / "nope.model")
