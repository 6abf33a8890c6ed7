"""The `bytelm` command: one entry point, one module per subcommand.

Each subcommand lives next to the code it drives and exposes `main(argv) -> int | None`; this file
only routes to it, so importing the CLI never pulls in Lightning, lm-eval or Triton. User mistakes
(`BytelmError`) become one line on stderr and exit code 2; a closed stdout pipe (`| head`) ends
the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bytelm import __version__
from bytelm.errors import BytelmError

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("bytelm.data.prepare_cli", "turn a corpus into byte shards (and BPE token shards)"),
    "train": ("bytelm.training.cli", "train a model from a YAML recipe with Lightning"),
    "eval": ("bytelm.eval.cli", "bits per byte and lm-eval tasks for a run or release"),
    "generate": ("bytelm.commands.generate", "stream text from a released model"),
    "release": ("bytelm.commands.release", "write a safetensors release folder with a model card"),
    "bench": ("bytelm.commands.bench", "benchmarks: kernels, train and generate throughput"),
    "report": ("bytelm.eval.report", "REPORT.md with tables and plots from runs and evals"),
    "demo": ("bytelm.commands.demo", "the whole mission on one machine: prepare, train, eval, release"),
    "synth": ("bytelm.commands.synth", "recall tasks (MQAR, copy, induction) trained from scratch per mixer"),
    "study": ("bytelm.commands.study", "seeds x budgets x arms (and lr sweeps), resumable, STUDY.md"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytelm",
        description="Tokenizer-free hierarchical byte language models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
        + "\n\nRun `bytelm COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"bytelm {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    module_name, _ = COMMANDS[args.command]
    try:
        module = importlib.import_module(module_name)
        return int(module.main(args.args) or 0)
    except BytelmError as err:
        print(f"bytelm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bytelm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
