"""`bytelm generate DIR`: stream text from a release folder or run dir.

Standard output carries the generated text only, written as it is produced; notes go to standard
error. Decoding is `bytelm.generation` (the one decoder of both model kinds): the model produces
bytes (the baseline: tokens, each the bytes it decodes to); they become text only at the edge,
through an incremental UTF-8 decoder, so a character split across steps prints whole and invalid
UTF-8 shows as U+FFFD. Stop strings are matched on bytes, and the bytes that might begin one are
held back until it is clear they do not.

A prompt file holds one prompt per line and runs as a batch: prompts of the same length in
model ids decode together, and completions print in file order, one per line.
"""

from __future__ import annotations

import codecs
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from bytelm.commands.arguments import ArgumentParser, positive_int
from bytelm.errors import BytelmError
from bytelm.generation import COMPILE_KINDS, Decoder, Sampling, Vocabulary


def decoder_for(loaded: Any, compile_step: str | None = None) -> Decoder:
    """The decoder of a loaded model: its ids' bytes come from its codec."""
    vocab = Vocabulary.of_codec(loaded.codec, loaded.config.vocab_size)
    return Decoder(loaded.model, vocab, compile_step=compile_step)


class OrderedPrinter:
    """Write completions in prompt order: the current one streams, later ones wait their turn."""

    def __init__(self, count: int, out: TextIO, separator: str = "\n") -> None:
        self.out, self.separator = out, separator
        self.parts: list[list[str]] = [[] for _ in range(count)]
        self.finished = [False] * count
        self.current = 0

    def write(self, index: int, text: str) -> None:
        self.parts[index].append(text)
        self._drain()

    def close(self, index: int) -> None:
        self.finished[index] = True
        self._drain()

    def _drain(self) -> None:
        while self.current < len(self.parts):
            self.out.write("".join(self.parts[self.current]))
            self.parts[self.current].clear()
            if not self.finished[self.current]:
                break
            self.out.write(self.separator)
            self.current += 1
        self.out.flush()


def read_prompts(args: Any) -> list[bytes]:
    """The prompt bytes: --prompt as given (raw argv bytes), or each non-empty line of a file."""
    if args.prompt is not None:
        if not args.prompt:
            raise BytelmError("--prompt is empty; give at least one byte")
        return [os.fsencode(args.prompt)]
    path = Path(args.prompt_file)
    if args.prompt_file == "-":
        data = sys.stdin.buffer.read()
    elif not path.is_file():
        raise BytelmError(f"{path}: prompt file not found")
    else:
        data = path.read_bytes()
    prompts = [line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()]
    if not prompts:
        raise BytelmError(f"{args.prompt_file}: the prompt file has no non-empty line")
    return prompts


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="bytelm generate",
        description="Stream text from a release folder or run dir (text on stdout, notes on "
        "stderr). A prompt file runs as a batch, one prompt per line, one completion per line.",
    )
    parser.add_argument("dir", help="release folder or run dir")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the prompt text")
    source.add_argument("--prompt-file", help="file with one prompt per line ('-' for stdin)")
    parser.add_argument(
        "--max-bytes",
        type=positive_int,
        default=256,
        help="most bytes to generate per prompt (default 256)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="sampling temperature; 0 means greedy (default 1.0)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=None, help="sample among the k likeliest ids"
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="sample within the smallest set of ids holding probability p",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        help="stop when this string appears (not printed); backslash escapes such as \\n "
        "work; repeatable",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
    parser.add_argument("--dtype", default=None, help="fp32, bf16 or fp16 (default: as saved)")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="jit",
        choices=COMPILE_KINDS,
        help="decode with a compiled step: jit (torch.compile, the default) or aot (AOTInductor, "
        "no per-call guards); compiles first, pays off for long outputs",
    )
    return parser


def sampling_from_args(args: Any) -> Sampling:
    """Validated sampling settings from parsed arguments."""
    if not args.temperature >= 0:
        raise BytelmError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise BytelmError(f"--top-p must be in (0, 1], got {args.top_p}")
    stops = []
    for text in args.stop:
        try:
            stops.append(codecs.escape_decode(os.fsencode(text))[0])
        except ValueError as err:
            raise BytelmError(f"--stop {text!r}: {err}") from None
    if not all(stops):
        raise BytelmError("--stop must not be empty")
    return Sampling(
        max_bytes=args.max_bytes,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stops=stops,
    )


def _stdout_text() -> TextIO:
    """Standard output that never fails on a character the terminal's encoding lacks."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    return sys.stdout


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    sampling = sampling_from_args(args)
    prompts = read_prompts(args)
    from bytelm.checkpoint import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(args.dir, device=device, dtype=args.dtype)
    print(
        f"bytelm generate: {loaded.config.kind} model from {args.dir} on {device}, "
        f"{len(prompts)} prompt(s)",
        file=sys.stderr,
    )
    printer = OrderedPrinter(len(prompts), _stdout_text())
    encoded = [loaded.codec.encode(p) for p in prompts]
    decoder = decoder_for(loaded, compile_step=args.compile)
    try:
        decoder.generate(encoded, sampling, printer.write, printer.close)
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as text tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
