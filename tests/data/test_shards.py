"""Every byte survives into the shards; shards are verified on load; writes are atomic."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bytelm.data.prepare import prepare
from bytelm.data.shards import atomic_open, load_shard, read_manifest, write_chunks
from bytelm.data.splits import SPLITS
from bytelm.errors import BytelmError


def _awkward_bytes(n: int = 50_000, seed: int = 0) -> bytes:
    """Random bytes plus every byte value, NUL runs, 0xFF runs and broken UTF-8 sequences."""
    rng = np.random.default_rng(seed)
    parts = [
        bytes(range(256)),
        b"\x00" * 7,
        b"\xff\xfe\xff",
        "caf\u00e9 \u2581 \U0001f600".encode(),
        b"\xe2\x82",  # a truncated 3-byte sequence
        b"\xc0\xaf",  # an overlong encoding
        rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
        b"\r\n\r\n\x80",
    ]
    return b"".join(parts)


def _write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif path.suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    elif path.suffix == ".xz":
        path.write_bytes(lzma.compress(data))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("b_second.bin", data[len(data) // 2 :])
            archive.writestr("a_first.bin", data[: len(data) // 2])
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name", ["corpus.txt", "corpus.bin", "corpus.gz", "corpus.bz2", "corpus.xz", "corpus.zip"]
)
def test_arbitrary_bytes_round_trip_through_shards(tmp_path: Path, name: str) -> None:
    data = _awkward_bytes()
    source = _write(tmp_path / name, data)
    folder = prepare(source=str(source), out=tmp_path / "out")
    shards = [np.asarray(load_shard(folder, split)) for split in SPLITS]
    assert all(s.dtype == np.uint8 for s in shards)
    assert b"".join(s.tobytes() for s in shards) == data
    assert len(data) == 50_289
    assert [len(s) for s in shards] == [45_260, 2_514, 2_515]  # round(0.9 n), round(0.05 n), rest


def test_folder_source_concatenates_files_in_path_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    parts = [_awkward_bytes(3000, seed) for seed in range(3)]
    _write(src / "a.txt", parts[0])
    _write(src / "b" / "c.gz", parts[2])
    _write(src / "b" / "a.bin", parts[1])
    (src / ".hidden").write_bytes(b"never read")
    folder = prepare(source=str(src), out=tmp_path / "out")
    joined = b"".join(np.asarray(load_shard(folder, s)).tobytes() for s in SPLITS)
    assert joined == b"".join(parts)


def _prepared(tmp_path: Path) -> Path:
    source = _write(tmp_path / "c.txt", _awkward_bytes(20_000))
    return prepare(source=str(source), out=tmp_path / "out")


def test_load_shard_rejects_a_tampered_shard(tmp_path: Path) -> None:
    folder = _prepared(tmp_path)
    with open(folder / "val.bin", "r+b") as handle:
        handle.seek(100)
        original = handle.read(1)
        handle.seek(100)
        handle.write(bytes([original[0] ^ 1]))
    with pytest.raises(BytelmError, match="val.bin does not match the sha256"):
        load_shard(folder, "val")


def test_load_shard_rejects_a_truncated_shard(tmp_path: Path) -> None:
    folder = _prepared(tmp_path)
    size = (folder / "train.bin").stat().st_size
    os.truncate(folder / "train.bin", size - 1)
    with pytest.raises(BytelmError, match=f"has {size - 1:,} bytes but its manifest says {size:,}"):
        load_shard(folder, "train")


def test_load_shard_needs_a_manifest_and_the_split(tmp_path: Path) -> None:
    folder = _prepared(tmp_path)
    with pytest.raises(BytelmError, match="no tokens shard for split 'val'"):
        load_shard(folder, "val", "tokens")
    with pytest.raises(BytelmError, match="not a prepared data folder"):
        load_shard(tmp_path, "train")


def test_manifest_records_size_and_sha256(tmp_path: Path) -> None:
    import hashlib

    folder = _prepared(tmp_path)
    manifest = read_manifest(folder)
    for split in SPLITS:
        entry = manifest["files"][f"{split}.bin"]
        content = (folder / f"{split}.bin").read_bytes()
        assert entry["bytes"] == len(content)
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert manifest["tokenizer"] is None
    assert manifest["split_rule"] == {"kind": "contiguous", "fractions": [0.9, 0.05, 0.05]}


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def chunks():
        yield b"partial"
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_chunks(tmp_path / "x.bin", chunks())
    assert list(tmp_path.iterdir()) == []
    with atomic_open(tmp_path / "y.bin") as handle:
        handle.write(b"done")
    assert [p.name for p in tmp_path.iterdir()] == ["y.bin"]
