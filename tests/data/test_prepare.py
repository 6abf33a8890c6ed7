"""`bytelm prepare`: idempotent reruns, the cache, structured sources, and every bad input."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bytelm.cli import main as cli
from bytelm.data.prepare import CACHE_ENV, ensure_prepared, prepare
from bytelm.data.shards import MANIFEST, load_shard, read_manifest
from bytelm.data.splits import SPLITS
from bytelm.errors import BytelmError

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(2000))


def _all_bytes(folder: Path) -> bytes:
    return b"".join(np.asarray(load_shard(folder, s)).tobytes() for s in SPLITS)


def _leftovers(folder: Path) -> list[str]:
    """Anything that could pass for output: temporary files or a manifest."""
    if not folder.exists():
        return []
    return sorted(
        p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == MANIFEST
    )


def test_rerun_verifies_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = tmp_path / "out"
    assert cli(["prepare", "--source", str(source), "--out", str(out)]) == 0
    stamp = (out / "train.bin").stat().st_mtime_ns
    capsys.readouterr()
    assert cli(["prepare", "--source", str(source), "--out", str(out)]) == 0
    assert "byte shards verified, nothing to do" in capsys.readouterr().out
    assert (out / "train.bin").stat().st_mtime_ns == stamp


def test_rerun_rebuilds_a_tampered_shard_and_a_changed_source(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = prepare(source=str(source), out=tmp_path / "out")
    (out / "test.bin").write_bytes(b"tampered")
    prepare(source=str(source), out=out)
    assert _all_bytes(out) == TEXT.encode()
    source.write_text(TEXT.upper())
    prepare(source=str(source), out=out)
    assert _all_bytes(out) == TEXT.upper().encode()


def test_check_verifies_a_prepared_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = prepare(source=str(source), out=tmp_path / "out")
    assert cli(["prepare", "--check", str(out)]) == 0
    with open(out / "train.bin", "r+b") as handle:
        handle.write(b"X")
    capsys.readouterr()
    assert cli(["prepare", "--check", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.bin does not match the sha256" in err


def test_cache_is_keyed_by_corpus_and_settings(
    data_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("BYTELM_DATA_DIR", data_dir)
    first = ensure_prepared("tinyshakespeare")
    assert first.parent == tmp_path / "cache" and first.name.startswith("tinyshakespeare-bytes-")
    assert ensure_prepared("tinyshakespeare") == first
    assert prepare(corpus="tinyshakespeare", split="0.8,0.1,0.1") != first
    bpe = ensure_prepared("tinyshakespeare", tokenizer="bpe", vocab_size=512)
    assert bpe.name.startswith("tinyshakespeare-bpe512-") and bpe != first
    assert ensure_prepared(str(bpe)) == bpe  # a prepared folder is used as it is
    assert read_manifest(bpe)["tokenizer"]["vocab_size"] == 512


def test_adding_a_tokenizer_reuses_the_byte_shards(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = prepare(source=str(source), out=tmp_path / "out")
    stamp = (out / "train.bin").stat().st_mtime_ns
    prepare(source=str(source), out=out, tokenizer="bpe", vocab_size=300)
    assert (out / "train.bin").stat().st_mtime_ns == stamp
    assert read_manifest(out)["tokenizer"]["vocab_size"] == 300
    prepare(source=str(source), out=out, tokenizer="bpe", vocab_size=320)
    assert len(load_shard(out, "val", "tokens")) == read_manifest(out)["tokenizer"]["tokens"]["val"]


def _records(n: int = 300) -> list[dict]:
    return [{"id": i, "body": f"record {i} \u00e9\u2581 text\n" * (1 + i % 3)} for i in range(n)]


def _expected(records: list[dict]) -> bytes:
    return b"\n\n".join(r["body"].encode() for r in records)


def test_jsonl_source_with_text_field(tmp_path: Path) -> None:
    records = _records()
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = prepare(source=str(path), out=tmp_path / "out", text_field="body")
    assert _all_bytes(out) == _expected(records)


def test_parquet_and_saved_dataset_sources(tmp_path: Path) -> None:
    import datasets

    records = _records()
    table = datasets.Dataset.from_list(records)
    table.to_parquet(str(tmp_path / "r.parquet"))
    table.save_to_disk(str(tmp_path / "saved"))
    for name in ("r.parquet", "saved"):
        out = prepare(source=str(tmp_path / name), out=tmp_path / f"out-{name}", text_field="body")
        assert _all_bytes(out) == _expected(records)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit 2 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bytelm prepare: error: "), err
    return err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    err = _error(["prepare", "--source", str(tmp_path / "no.txt"), "--out", str(out)], capsys)
    assert "does not exist" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "is empty"),
        ("empty.gz", gzip.compress(b""), "is empty"),
        ("tiny.txt", b"abc", "too small to split"),
        ("bad.xz", b"this is not xz data", "corrupt or truncated"),
        ("cut.xz", lzma.compress(os.urandom(200_000))[:50_000], "corrupt or truncated"),
        ("cut.gz", gzip.compress(os.urandom(200_000))[:50_000], "corrupt or truncated"),
        ("bad.bz2", b"BZh9 garbage", "corrupt or truncated"),
        ("bad.zip", b"PK\x03\x04 garbage", "corrupt or truncated"),
    ],
)
def test_bad_corpus_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    out = tmp_path / "out"
    err = _error(["prepare", "--source", str(tmp_path / name), "--out", str(out)], capsys)
    assert message in err
    assert not out.exists()


def test_failed_rebuild_leaves_no_stale_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = prepare(source=str(source), out=tmp_path / "out")
    source.write_bytes(b"")
    assert "is empty" in _error(["prepare", "--source", str(source), "--out", str(out)], capsys)
    assert _leftovers(out) == [MANIFEST]  # the earlier, still valid preparation is untouched
    assert _all_bytes(out) == TEXT.encode()


def test_missing_text_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(10)))
    out = tmp_path / "out"
    err = _error(
        ["prepare", "--source", str(path), "--out", str(out), "--text-field", "txt"], capsys
    )
    assert "no text field 'txt' (fields: body, id)" in err
    assert not out.exists()


def test_vocab_size_the_text_cannot_support(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = tmp_path / "out"
    argv = ["prepare", "--source", str(source), "--out", str(out), "--tokenizer", "bpe"]
    assert "Vocabulary size too high" in _error([*argv, "--vocab-size", "30000"], capsys)
    assert "too small" in _error([*argv, "--vocab-size", "100"], capsys)
    assert not (out / "tokenizer.model").exists() and not list(out.rglob("*.tmp"))
    assert read_manifest(out)["tokenizer"] is None  # the byte shards are finished and valid


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--corpus", "wikipedia"], "unknown corpus 'wikipedia'"),
        (["--corpus", "tinyshakespeare", "--source", "x.txt"], "exactly one of"),
        (["--corpus", "tinyshakespeare", "--split", "0.9,0.2"], "--split"),
        (["--corpus", "tinyshakespeare", "--tokenizer", "wordpiece"], "unknown tokenizer"),
        (
            ["--corpus", "tinyshakespeare", "--vocab-size", "512"],
            "--vocab-size needs --tokenizer bpe",
        ),
        (["--check", "/no/such/folder"], "not a prepared data folder"),
    ],
)
def test_bad_settings(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = _error(["prepare", *argv, "--out", str(tmp_path / "out"), "--data-dir", data_dir], capsys)
    assert message in err


def test_cli_missing_file_in_a_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bytelm.cli",
            "prepare",
            "--source",
            "/no/such/file",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "bytelm prepare: error: source /no/such/file does not exist\n"
    assert not out.exists()


def test_hub_ids_are_told_apart_from_missing_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bytelm.data.sources import resolve_source

    monkeypatch.chdir(tmp_path)
    spec = resolve_source(source="owner/name:config", text_field="body").spec
    assert spec == {"kind": "hub", "hub_id": "owner/name", "config": "config", "text_field": "body"}
    (tmp_path / "corpora").mkdir()  # a local folder: corpora/missing is a path, not a hub id
    for missing in ("owner/name.txt", "./owner/name", "corpora/missing", str(tmp_path / "x")):
        with pytest.raises(BytelmError, match="does not exist"):
            resolve_source(source=missing)


def test_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bytelm.cli",
            "prepare",
            "--source",
            "owner/name",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("bytelm prepare: error: cannot load hub dataset owner/name")
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    source = tmp_path / "c.txt"
    source.write_text(TEXT)
    out = prepare(source=str(source), out=tmp_path / "out")
    (out / ".train.bin.abc123.tmp").write_bytes(b"half")
    (out / "tok").mkdir()
    (out / "tok" / ".val.bin.x.tmp").write_bytes(b"half")
    prepare(source=str(source), out=out)
    assert not list(out.rglob("*.tmp"))


def test_enwik8_is_found_locally_and_needs_its_standard_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik8", b"<mediawiki>" * 100)
    argv = [
        "prepare",
        "--corpus",
        "enwik8",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
    ]
    assert "corpus has 1,100 bytes; its standard split needs exactly 100,000,000" in _error(
        argv, capsys
    )
