"""Shared fixtures for the data tests: small prepared folders, made once per session."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from bytelm.data.prepare import prepare
from bytelm.data.sources import GUTENBERG_TEXT


@pytest.fixture(scope="session")
def shakespeare_bpe(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tinyshakespeare prepared with a small BPE vocabulary (about a second)."""
    out = tmp_path_factory.mktemp("shakespeare") / "prepared"
    return prepare(
        corpus="tinyshakespeare", tokenizer="bpe", vocab_size=1024, out=out, data_dir=data_dir
    )


@pytest.fixture(scope="session")
def gutenberg_bytes(data_dir: str) -> bytes:
    """The whole 100,000,000-byte gutenberg corpus, decompressed independently of bytelm.data."""
    return lzma.decompress((Path(data_dir) / GUTENBERG_TEXT).read_bytes())


@pytest.fixture(scope="session")
def gutenberg_prepared(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gutenberg byte shards (no tokenizer): about 3 s."""
    return prepare(
        corpus="gutenberg", out=tmp_path_factory.mktemp("gutenberg") / "p", data_dir=data_dir
    )
