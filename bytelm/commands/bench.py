"""`bytelm bench {kernels,train,generate,mixers}`: each benchmark lives beside what it measures.

Every benchmark prints a table and writes JSON; none of them is a test.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "kernels": ("bytelm.kernels.bench", "Triton kernels against references and peers"),
    "train": ("bytelm.training.bench", "training bytes/s and peak memory, hybrid vs baseline"),
    "generate": ("bytelm.commands.bench_generate", "decode bytes/s and memory against context"),
    "mixers": ("bytelm.layers.bench", "forward+backward time and memory of every layout letter"),
}


def main(argv: list[str]) -> int | None:
    parser = argparse.ArgumentParser(
        prog="bytelm bench",
        description="Benchmarks that print a table and write JSON.",
        epilog="benches:\n" + "\n".join(f"  {k:<9} {h}" for k, (_, h) in BENCHES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bench", choices=sorted(BENCHES))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    module = importlib.import_module(BENCHES[args.bench][0])
    return module.main(args.args)
