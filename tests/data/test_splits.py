"""Split rules: gutenberg keeps authors whole and covers the corpus exactly; fractions and fixed sizes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bytelm.data.shards import load_shard, read_manifest
from bytelm.data.sources import GUTENBERG_BOOKS
from bytelm.data.splits import (
    SPLITS,
    author_of,
    author_split,
    fixed_split,
    fraction_split,
    parse_fractions,
)
from bytelm.errors import BytelmError

GUTENBERG_SHA256 = "fda7ceb323b6a31fd45dd9cc7ec0fcef7ed166353a0529845f3d342b9722e604"  # SOURCES.md


def _books(data_dir: str) -> list[dict]:
    return json.loads((Path(data_dir) / GUTENBERG_BOOKS).read_text(encoding="utf-8"))


def test_author_split_keeps_authors_whole_and_tiles_the_corpus(data_dir: str) -> None:
    books = _books(data_dir)
    plan = author_split(books, 100_000_000, (0.9, 0.05, 0.05))
    ranges = sorted((s, e, name) for name in SPLITS for s, e in plan.ranges[name])
    assert ranges[0][0] == 0 and ranges[-1][1] == 100_000_000
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # no gap, no overlap
    split_of_byte = {}
    for book in books:
        start = book["offset"]
        owner = next(name for s, e, name in ranges if s <= start < e)
        split_of_byte[book["path"]] = owner
        end = start + book["in_100M_bytes"]
        assert any(s <= start and end <= e for s, e, _ in ranges)  # a book never straddles splits
    authors = {
        name: {author_of(p) for p, s in split_of_byte.items() if s == name} for name in SPLITS
    }
    assert not authors["train"] & authors["val"]
    assert not authors["train"] & authors["test"]
    assert not authors["val"] & authors["test"]
    assert authors == {name: set(plan.rule["authors"][name]) for name in SPLITS}
    sizes = plan.sizes()
    assert sum(sizes.values()) == 100_000_000
    assert 0.04 < sizes["val"] / 1e8 <= 0.05 and 0.04 < sizes["test"] / 1e8 <= 0.05


def test_author_split_is_pinned(data_dir: str) -> None:
    """The split is a fixed function of the book list: results and caches depend on it never moving."""
    plan = author_split(_books(data_dir), 100_000_000, (0.9, 0.05, 0.05))
    assert plan.sizes() == {"train": 90_034_882, "val": 4_980_533, "test": 4_984_585}
    assert {name: len(a) for name, a in plan.rule["authors"].items()} == {
        "train": 59,
        "val": 9,
        "test": 6,
    }


def test_gutenberg_shards_are_the_corpus_split_by_author(
    gutenberg_prepared: Path, gutenberg_bytes: bytes, data_dir: str
) -> None:
    assert hashlib.sha256(gutenberg_bytes).hexdigest() == GUTENBERG_SHA256
    manifest = read_manifest(gutenberg_prepared)
    corpus = np.frombuffer(gutenberg_bytes, dtype=np.uint8)
    covered = np.zeros(len(corpus), dtype=np.int8)
    for split in SPLITS:
        ranges = manifest["files"][f"{split}.bin"]["ranges"]
        expected = np.concatenate([corpus[s:e] for s, e in ranges])
        assert np.array_equal(load_shard(gutenberg_prepared, split), expected)
        for s, e in ranges:
            covered[s:e] += 1
    assert (covered == 1).all()  # every byte of the corpus in exactly one split
    assert manifest["split_rule"]["kind"] == "by_author"
    assert manifest["split_rule"] == author_split(_books(data_dir), 10**8, (0.9, 0.05, 0.05)).rule


def test_fraction_split_is_contiguous_and_in_order() -> None:
    plan = fraction_split(1000, (0.9, 0.05, 0.05))
    assert plan.ranges == {"train": [(0, 900)], "val": [(900, 950)], "test": [(950, 1000)]}
    assert fraction_split(7, parse_fractions("0.5,0.25,0.25")).sizes() == {
        "train": 4,
        "val": 2,
        "test": 1,
    }


def test_fixed_split_is_enwik8_standard() -> None:
    plan = fixed_split(100_000_000)
    assert plan.ranges["val"] == [(90_000_000, 95_000_000)]
    with pytest.raises(BytelmError, match="exactly 100,000,000"):
        fixed_split(99_999_999)


@pytest.mark.parametrize("text", ["0.9,0.1", "0.9,0.2,0.05", "a,b,c", "1,0,0"])
def test_bad_fractions_are_user_errors(text: str) -> None:
    with pytest.raises(BytelmError, match="--split"):
        parse_fractions(text)


def test_too_small_to_split() -> None:
    with pytest.raises(BytelmError, match="too small to split: val would be empty"):
        fraction_split(5, (0.9, 0.05, 0.05))
