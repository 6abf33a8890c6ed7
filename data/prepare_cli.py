"""`bytelm prepare`: the command line over `bytelm.data.prepare` (prepare a corpus, or check a
prepared folder) and the summary it prints."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bytelm.data.prepare import CACHE_ENV, DEFAULT_VOCAB_SIZE, check, prepare
from bytelm.data.shards import read_manifest, shard_name
from bytelm.data.sources import NAMED_CORPORA
from bytelm.data.splits import SPLITS
from bytelm.errors import BytelmError


def _summary(folder: Path) -> str:
    manifest = read_manifest(folder)
    lines = [f"prepared {manifest['name']} in {folder}"]
    tok = manifest.get("tokenizer")
    for split in SPLITS:
        line = f"  {split:<5} {manifest['files'][shard_name(split)]['bytes']:>13,} bytes"
        if tok:
            line += f"  {tok['tokens'][split]:>12,} tokens  {tok['bytes_per_token'][split]:.3f} bytes/token"
        lines.append(line)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytelm prepare",
        description="Turn a corpus into byte shards (train/val/test .bin + manifest.json), and with "
        "--tokenizer bpe also a SentencePiece model and token shards.",
    )
    what = parser.add_argument_group("what to prepare (one of)")
    what.add_argument("--corpus", help=f"a named corpus: {', '.join(NAMED_CORPORA)}")
    what.add_argument(
        "--source",
        help="a .txt/.jsonl/.parquet/.gz/.bz2/.xz/.zip file, a folder, a saved "
        "datasets folder, or a hub id",
    )
    parser.add_argument(
        "--text-field",
        help="record field holding the text (jsonl, parquet, datasets; default: text)",
    )
    parser.add_argument(
        "--out", help=f"output folder (default: a folder in ${CACHE_ENV} or ~/.cache/bytelm)"
    )
    parser.add_argument("--tokenizer", default="bytes", help="bytes (default) or bpe")
    parser.add_argument(
        "--vocab-size", type=int, help=f"BPE vocabulary size (default {DEFAULT_VOCAB_SIZE})"
    )
    parser.add_argument(
        "--split",
        default="0.9,0.05,0.05",
        help="train,val,test fractions of bytes (gutenberg: targets for its author split; "
        "enwik8: always 90M/5M/5M)",
    )
    parser.add_argument(
        "--data-dir", help="local data folder for named corpora (default: $BYTELM_DATA_DIR)"
    )
    parser.add_argument(
        "--check", metavar="DIR", help="only verify the sizes and sha256 of a prepared folder"
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    if args.check is not None:
        if args.corpus or args.source:
            raise BytelmError("--check takes a prepared folder and no --corpus or --source")
        files = check(args.check)["files"]
        print(f"{args.check}: {len(files)} files match their manifest")
        return 0
    folder = prepare(
        corpus=args.corpus,
        source=args.source,
        out=args.out,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        split=args.split,
        text_field=args.text_field,
        data_dir=args.data_dir,
    )
    print(_summary(folder))
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0
