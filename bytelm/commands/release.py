"""`bytelm release RUN_DIR --out DIR`: a safetensors release folder with a model card.

The folder (config.json, model.safetensors, tokenizer.model for a baseline, README.md,
checksums.sha256) has the layout a model hub expects and can be uploaded as it is. It is written
to a temporary folder and renamed into place; an existing DIR is replaced only with --force.
"""

from __future__ import annotations

import sys

from bytelm.commands.arguments import ArgumentParser


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="bytelm release",
        description="Write a release folder (safetensors, config, model card, checksums) "
        "from a finished run dir.",
    )
    parser.add_argument("run_dir", help="run dir written by `bytelm train`")
    parser.add_argument("--out", required=True, help="release folder to write")
    parser.add_argument("--force", action="store_true", help="replace an existing --out folder")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from bytelm.checksums import verify_checksums
    from bytelm.release_layout import CHECKSUMS_FILE
    from bytelm.release_writer import save_release

    out = save_release(args.run_dir, args.out, force=args.force)
    verify_checksums(out)
    files = sorted(p.name for p in out.iterdir())
    print(
        f"bytelm release: wrote {out} ({', '.join(files)}; verified {CHECKSUMS_FILE})",
        file=sys.stderr,
    )
    print(out)
    return 0
