"""`bytelm prepare`: a corpus -> byte shards (and SentencePiece BPE token shards).

Steps, each skipped when a rerun finds its outputs already matching the manifest:
1. bytes: read the source into a temporary file, choose the split (gutenberg by author, enwik8
   90M/5M/5M, others contiguous by `--split`), write `{train,val,test}.bin`, then manifest.json.
2. tokens (`--tokenizer bpe`): train SentencePiece on a bounded sample of train.bin only, write
   `tokenizer.model` and `tok/{split}.bin`, record bytes per token per split in the manifest.

Every file is written under a temporary name and renamed; the manifest is written last and
removed before anything it lists is rewritten, so an interrupted run leaves nothing that looks
finished. Without `--out` the result goes to the cache, `$BYTELM_CACHE` (default
~/.cache/bytelm), in a folder named by the corpus and a hash of the settings (`cache_key`), so
every run that asks for the same data shares one preparation. A lock file serialises concurrent
preparations of one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import bytelm
from bytelm.data.shards import (
    MANIFEST,
    check_file,
    file_entry,
    files_ok,
    load_shard,
    read_manifest,
    shard_name,
    write_chunks,
    write_manifest,
)
from bytelm.data.sources import NAMED_CORPORA, Source, resolve_source
from bytelm.data.splits import (
    SPLITS,
    SplitPlan,
    author_split,
    fixed_split,
    fraction_split,
    parse_fractions,
)
from bytelm.data.tokenizer import BpeTokenizer, token_dtype, train_bpe, training_sample
from bytelm.errors import BytelmError

FORMAT = 1  # bump when the shard layout or a split rule changes: old caches are then rebuilt
CACHE_ENV = "BYTELM_CACHE"
DEFAULT_VOCAB_SIZE = 8192
BPE_SAMPLE_BYTES = 16_000_000  # SentencePiece trains on at most this much of train.bin
ENCODE_BLOCK = 8 << 20  # bytes handed to the tokenizer at a time
TOKENIZER_MODEL = "tokenizer.model"
LOCK = ".lock"
BYTE_FILES = tuple(shard_name(s) for s in SPLITS)
TOKEN_FILES = (TOKENIZER_MODEL, *(shard_name(s, "tokens") for s in SPLITS))


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/bytelm").expanduser()


def cache_key(source: Source, split: Any, tokenizer: dict[str, Any] | None) -> str:
    """Folder name in the cache: corpus name, tokenizer, and a hash of every setting.

    The hash covers the format version, what the source is (corpus name and data folder, or path,
    or hub id, and text field), the split settings and the tokenizer settings; it leaves out the
    source files' sizes and mtimes, so a changed source is rebuilt in place, not beside.
    """
    identity = {k: v for k, v in source.spec.items() if k != "files"}
    blob = json.dumps(
        {"format": FORMAT, "source": identity, "split": split, "tokenizer": tokenizer},
        sort_keys=True,
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    tok = "bytes" if tokenizer is None else f"bpe{tokenizer['vocab_size']}"
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)[:48]
    return f"{slug}-{tok}-{digest}"


def prepare(
    corpus: str | None = None,
    source: str | None = None,
    out: str | os.PathLike[str] | None = None,
    tokenizer: str | None = None,
    vocab_size: int | None = None,
    split: str | Sequence[float] = (0.9, 0.05, 0.05),
    text_field: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """Prepare a corpus into `out` (or the cache) and return the folder; idempotent."""
    fractions = parse_fractions(split)
    tok = _tokenizer_settings(tokenizer, vocab_size)
    src = resolve_source(corpus, source, text_field, data_dir)
    split_setting = (
        "standard 90M/5M/5M"
        if src.name == "enwik8" and src.spec["kind"] == "corpus"
        else list(fractions)
    )
    request = {"format": FORMAT, "source": src.spec, "split": split_setting}
    folder = (
        Path(out).expanduser()
        if out is not None
        else cache_root() / cache_key(src, split_setting, tok)
    )
    created = not folder.exists()
    if folder.exists() and not folder.is_dir():
        raise BytelmError(f"output {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(folder):
            _remove_stale_temporaries(folder)
            manifest = _prepare_bytes(folder, src, request, fractions)
            if tok is not None:
                _prepare_tokens(folder, manifest, tok)
    except BaseException:
        if created:
            _remove_empty(folder)
        raise
    return folder


def ensure_prepared(
    corpus: str, tokenizer: str | None = None, vocab_size: int | None = None
) -> Path:
    """The cached preparation of a corpus, made on first use.

    `corpus` is a named corpus, a prepared folder (returned as it is) or any `--source` path or hub id.
    """
    if corpus in NAMED_CORPORA:
        return prepare(corpus=corpus, tokenizer=tokenizer, vocab_size=vocab_size)
    if (Path(corpus).expanduser() / MANIFEST).is_file():
        return Path(corpus).expanduser()
    return prepare(source=corpus, tokenizer=tokenizer, vocab_size=vocab_size)


def check(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify every file of a prepared folder against its manifest (BytelmError on a mismatch)."""
    manifest = read_manifest(folder)
    for name, entry in manifest.get("files", {}).items():
        check_file(folder, name, entry)
    return manifest


def _tokenizer_settings(tokenizer: str | None, vocab_size: int | None) -> dict[str, Any] | None:
    if tokenizer in (None, "bytes"):
        if vocab_size is not None:
            raise BytelmError("--vocab-size needs --tokenizer bpe")
        return None
    if tokenizer != "bpe":
        raise BytelmError(f"unknown tokenizer {tokenizer!r}; choose bytes or bpe")
    size = DEFAULT_VOCAB_SIZE if vocab_size is None else int(vocab_size)
    if size <= 259:
        raise BytelmError(
            f"vocab size {size} is too small: BPE needs 256 byte ids, 3 specials and some merges"
        )
    return {"kind": "bpe", "vocab_size": size, "sample_bytes": BPE_SAMPLE_BYTES}


def _say(message: str) -> None:
    print(f"prepare: {message}", flush=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of a killed run (only writers holding the lock make them)."""
    for stale in [*folder.glob(".*.tmp"), *folder.glob("tok/.*.tmp")]:
        stale.unlink(missing_ok=True)


def _remove_empty(folder: Path) -> None:
    """Undo creating `folder` when nothing but the lock file ended up in it."""
    with contextlib.suppress(FileNotFoundError):
        (folder / LOCK).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _old_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(folder) if (folder / MANIFEST).is_file() else None
    except BytelmError:
        return None


def _outputs_ok(folder: Path, manifest: dict[str, Any], names: Sequence[str]) -> bool:
    """True when the manifest lists every one of `names` and each file matches its entry."""
    files = manifest.get("files") or {}
    return all(n in files for n in names) and files_ok(folder, {n: files[n] for n in names})


def _prepare_bytes(
    folder: Path, src: Source, request: dict[str, Any], fractions: tuple[float, ...]
) -> dict[str, Any]:
    old = _old_manifest(folder)
    if old is not None and old.get("request") == request and _outputs_ok(folder, old, BYTE_FILES):
        _say(f"{folder}: byte shards verified, nothing to do")
        return old
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".corpus.", suffix=".tmp") as raw:
        total = 0
        for chunk in src.read():
            raw.write(chunk)
            total += len(chunk)
        raw.flush()
        if total == 0:
            raise BytelmError(f"corpus {src.name} is empty (0 bytes)")
        plan = _plan(src, total, fractions)
        _say(f"read {total:,} bytes of {src.name} in {time.perf_counter() - started:.1f}s")
        _clear_outputs(folder)
        corpus = np.memmap(raw.name, dtype=np.uint8, mode="r")
        files = {}
        for split in SPLITS:
            ranges = plan.ranges[split]
            entry = write_chunks(folder / shard_name(split), (corpus[s:e] for s, e in ranges))
            files[shard_name(split)] = {
                **entry,
                "dtype": "uint8",
                "ranges": [list(r) for r in ranges],
            }
        del corpus
    manifest = {
        "bytelm_version": bytelm.__version__,
        "format": FORMAT,
        "name": src.name,
        "source": src.spec,
        "split_rule": plan.rule,
        "request": request,
        "files": files,
        "tokenizer": None,
    }
    write_manifest(folder, manifest)
    sizes = ", ".join(f"{s} {files[shard_name(s)]['bytes']:,}" for s in SPLITS)
    _say(f"wrote byte shards ({sizes}) in {time.perf_counter() - started:.1f}s")
    return manifest


def _plan(src: Source, total: int, fractions: tuple[float, ...]) -> SplitPlan:
    if src.books is not None:
        return author_split(src.books, total, fractions)
    if src.name == "enwik8" and src.spec["kind"] == "corpus":
        return fixed_split(total)
    return fraction_split(total, fractions)


def _clear_outputs(folder: Path) -> None:
    """Remove the manifest first (nothing looks finished), then any old token outputs."""
    for name in (MANIFEST, *TOKEN_FILES):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


def _prepare_tokens(folder: Path, manifest: dict[str, Any], tok: dict[str, Any]) -> dict[str, Any]:
    old = manifest.get("tokenizer")
    if old is not None and old.get("request") == tok and _outputs_ok(folder, manifest, TOKEN_FILES):
        _say(f"{folder}: token shards verified, nothing to do")
        return manifest
    if old is not None:  # the manifest must not vouch for files about to be replaced
        files = {name: manifest["files"][name] for name in BYTE_FILES}
        manifest = {**manifest, "tokenizer": None, "files": files}
        write_manifest(folder, manifest)
    started = time.perf_counter()
    sample = training_sample(load_shard(folder, "train"), tok["sample_bytes"])
    model = train_bpe(sample, tok["vocab_size"], folder / TOKENIZER_MODEL)
    _say(
        f"trained BPE {tok['vocab_size']} on {len(sample):,} bytes in {time.perf_counter() - started:.1f}s"
    )
    dtype = token_dtype(model.vocab_size)
    files = dict(manifest["files"])
    files[TOKENIZER_MODEL] = file_entry(folder / TOKENIZER_MODEL)
    bytes_per_token, counts = {}, {}
    for split in SPLITS:
        data = load_shard(folder, split)
        entry = write_chunks(
            folder / shard_name(split, "tokens"), _encoded_blocks(model, data, dtype)
        )
        counts[split] = entry["bytes"] // dtype.itemsize
        bytes_per_token[split] = round(len(data) / counts[split], 4)
        files[shard_name(split, "tokens")] = {**entry, "dtype": dtype.name, "tokens": counts[split]}
    manifest = {
        **manifest,
        "files": files,
        "tokenizer": {
            "kind": "bpe",
            "vocab_size": model.vocab_size,
            "model": TOKENIZER_MODEL,
            "dtype": dtype.name,
            "sample_bytes": len(sample),
            "tokens": counts,
            "bytes_per_token": bytes_per_token,
            "request": tok,
        },
    }
    write_manifest(folder, manifest)
    _say(
        f"wrote token shards in {time.perf_counter() - started:.1f}s; bytes per token {bytes_per_token}"
    )
    return manifest


def _encoded_blocks(model: BpeTokenizer, data: np.ndarray, dtype: np.dtype) -> Iterator[np.ndarray]:
    """Token ids of `data` in blocks of about ENCODE_BLOCK bytes, each cut after a newline."""
    position = 0
    while position < len(data):
        block = bytes(data[position : position + ENCODE_BLOCK])
        if position + len(block) < len(data):
            cut = block.rfind(b"\n") + 1
            block = block[:cut] if cut else block
        position += len(block)
        yield model.encode_array(block).astype(dtype)
