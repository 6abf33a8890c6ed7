"""Codecs between bytes and ids: `ByteCodec` (ids are bytes) and `BpeTokenizer` (SentencePiece).

Both expose `kind`, `vocab_size`, `encode(text) -> list[int]`, `decode(ids) -> bytes` and
`token_bytes` (int64 [V]: how many UTF-8 bytes each id decodes to, 0 for specials), so bits per
byte can be computed from token losses exactly.

The BPE model is SentencePiece BPE with byte_fallback, identity normalization, no dummy prefix and
no whitespace removal. Two things SentencePiece alone would not round-trip are routed around it:
bytes that are not valid UTF-8 and the character U+2581 ("▁", SentencePiece's own space marker).
Both are encoded directly as byte-fallback ids, and `decode` maps every id to its exact bytes, so
`decode(encode(b)) == b` for any byte string. Text is handed to SentencePiece in paragraph-sized
segments (`segments`), the same way for training and encoding; a segment boundary only splits
tokens, it never changes the bytes.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bytelm.data.shards import write_bytes
from bytelm.errors import BytelmError

BYTE_VOCAB = 256
BOS, EOS, PAD = 256, 257, 258
MAX_SEGMENT = 4096  # characters per SentencePiece input
NUM_THREADS = 2

_ESCAPED = re.compile("([\udc80-\udcff\u2581]+)")  # invalid UTF-8 (surrogateescape) and "▁"
_PARAGRAPH_END = re.compile(r"(?<=\n\n)(?=[^\n])")
_SP_SPACE = "\u2581"


class ByteCodec:
    """Ids 0..255 are the bytes themselves; BOS, EOS, PAD sit above them."""

    kind = "bytes"
    vocab_size = BYTE_VOCAB + 3
    bos_id, eos_id, pad_id = BOS, EOS, PAD

    def __init__(self) -> None:
        self.token_bytes = np.zeros(self.vocab_size, dtype=np.int64)  # [V]
        self.token_bytes[:BYTE_VOCAB] = 1

    def encode(self, text: bytes | str) -> list[int]:
        return list(text.encode("utf-8") if isinstance(text, str) else bytes(text))

    def decode(self, ids: Iterable[int]) -> bytes:
        """The bytes of the byte ids; special ids decode to nothing."""
        arr = _id_array(ids)
        return arr[(arr >= 0) & (arr < BYTE_VOCAB)].astype(np.uint8).tobytes()


class BpeTokenizer:
    """A trained SentencePiece BPE model with exact byte round trips (see the module docstring)."""

    kind = "bpe"

    def __init__(self, model_path: str | os.PathLike[str], num_threads: int = NUM_THREADS) -> None:
        import sentencepiece as spm

        path = Path(model_path)
        if not path.is_file():
            raise BytelmError(f"tokenizer model {path} not found")
        self.model_path = path
        self.num_threads = num_threads
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.vocab_size = int(self.sp.get_piece_size())
        self.bos_id, self.eos_id = int(self.sp.bos_id()), int(self.sp.eos_id())
        self._pieces = [self._piece_bytes(i) for i in range(self.vocab_size)]
        self.token_bytes = np.array([len(p) for p in self._pieces], dtype=np.int64)  # [V]
        self._byte_ids = np.array(
            [self.sp.piece_to_id(f"<0x{b:02X}>") for b in range(BYTE_VOCAB)], dtype=np.int64
        )
        if not all(self.sp.is_byte(int(i)) for i in self._byte_ids):
            raise BytelmError(f"tokenizer model {path} was not trained with byte_fallback")

    def _piece_bytes(self, i: int) -> bytes:
        if self.sp.is_control(i) or self.sp.is_unknown(i):
            return b""
        piece = self.sp.id_to_piece(i)
        if self.sp.is_byte(i):
            return bytes([int(piece[3:5], 16)])
        return piece.replace(_SP_SPACE, " ").encode("utf-8")

    def encode(self, text: bytes | str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: bytes | str) -> np.ndarray:
        """Token ids (int64 [N]) of any bytes; SentencePiece runs on all segments in one batch."""
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8", "surrogateescape")
        parts = _ESCAPED.split(text)  # even: plain text, odd: runs to encode as raw bytes
        plain = [segments(p) for p in parts[0::2]]
        flat = [s for segs in plain for s in segs]
        encoded = self.sp.encode(flat, out_type=int, num_threads=self.num_threads) if flat else []
        pieces: list[Sequence[int]] = []
        done = 0
        for i, part in enumerate(parts):
            if i % 2 == 0:
                count = len(plain[i // 2])
                pieces += encoded[done : done + count]
                done += count
            else:
                pieces.append(self._byte_ids[list(_escaped_bytes(part))].tolist())
        total = sum(len(p) for p in pieces)
        return np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=total)

    def decode(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of the ids; BOS, EOS and unknown decode to nothing."""
        pieces = self._pieces
        return b"".join(pieces[i] for i in _id_array(ids).tolist())


def _id_array(ids: Iterable[int]) -> np.ndarray:
    """Any ids (list, numpy array, CPU tensor, generator) as int64 [N]."""
    return np.asarray(ids if hasattr(ids, "__len__") else list(ids), dtype=np.int64).reshape(-1)


def _escaped_bytes(run: str) -> Iterable[int]:
    for ch in run:
        yield from (_SP_SPACE.encode("utf-8") if ch == _SP_SPACE else (ord(ch) - 0xDC00,))


def segments(text: str) -> list[str]:
    """Split text after each blank-line run, then cut pieces longer than MAX_SEGMENT at line ends."""
    out: list[str] = []
    for para in _PARAGRAPH_END.split(text):
        if len(para) <= MAX_SEGMENT:
            if para:
                out.append(para)
            continue
        current = ""
        for line in para.splitlines(keepends=True):
            if len(current) + len(line) > MAX_SEGMENT and current:
                out.append(current)
                current = ""
            while len(line) > MAX_SEGMENT:
                out.append(line[:MAX_SEGMENT])
                line = line[MAX_SEGMENT:]
            current += line
        if current:
            out.append(current)
    return out


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def training_sample(data: np.ndarray | bytes, max_bytes: int, blocks: int = 64) -> bytes:
    """A bounded, deterministic sample: `blocks` evenly spaced pieces cut to whole lines."""
    view = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if len(view) <= max_bytes:
        return bytes(view)
    size, stride = max_bytes // blocks, len(view) // blocks
    parts = []
    for k in range(blocks):
        block = bytes(view[k * stride : k * stride + size])
        start, end = block.find(b"\n") + 1, block.rfind(b"\n") + 1
        parts.append(block[start:end] if 0 < start < end else block)
    return b"".join(parts)


def train_bpe(sample: bytes, vocab_size: int, model_path: str | os.PathLike[str]) -> BpeTokenizer:
    """Train SentencePiece BPE on `sample` and write the model atomically to `model_path`."""
    import sentencepiece as spm

    text = sample.decode("utf-8", "ignore").replace(_SP_SPACE, "")
    sentences = segments(text)
    if not sentences:
        raise BytelmError("cannot train a tokenizer: the training split has no text")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            byte_fallback=True,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            character_coverage=0.9995,
            max_sentence_length=4 * MAX_SEGMENT,
            num_threads=NUM_THREADS,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            minloglevel=2,
        )
    except RuntimeError as err:
        reason = str(err).split("] ", 1)[-1].splitlines()[0]
        raise BytelmError(
            f"cannot train a BPE vocabulary of {vocab_size} on this text: {reason}"
        ) from None
    write_bytes(model_path, model.getvalue())
    return BpeTokenizer(model_path)
