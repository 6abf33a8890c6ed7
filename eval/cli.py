"""`bytelm eval ...`: bits per byte, lm-eval tasks, robustness, and everything at once.

    bytelm eval bpb MODEL --corpus gutenberg --split test [--max-bytes N] [--out FILE]
    bytelm eval harness MODEL --tasks bytelm_zeroshot,bytelm_chars [--limit N] [--out FILE]
    bytelm eval robustness MODEL [--bytes N] [--out FILE]
    bytelm eval all MODEL --out DIR [--limit N] [--limit-zeroshot N] [--limit-chars N]
                                    [--limit-recall N] [--bpb-bytes N] [--robust-bytes N]
                                    [--groups zeroshot,chars,recall] [--recall-lengths 256,1k,...]

MODEL is a run directory or a release folder. Every command prints its result as JSON and writes
it to --out (`bpb` on a run directory defaults to RUN/eval/bpb.json for the test split, the
file `eval all` writes there, so `bytelm report` and the model card read it whichever command
wrote it; the corpus is recorded inside); the layout is in `bytelm.eval.run`. `--limit N` evaluates the first N
documents of each lm-eval task; the full suites are large (HellaSwag alone is 10,042 items), so
CPU runs should set it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bytelm.errors import BytelmError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bytelm eval", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="run directory or release folder")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
        p.add_argument(
            "--corpus", default="gutenberg", help="corpus of the test split (default gutenberg)"
        )

    p = sub.add_parser("bpb", help="bits per byte on a split of a prepared corpus")
    common(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--max-bytes", type=int, default=None, help="score only the first N bytes")
    p.add_argument("--offset", type=int, default=0, help="first byte of the split to score")
    p.add_argument(
        "--out", type=Path, default=None,
        help="JSON file (default for a run dir: RUN/eval/bpb.json for the test split, where "
        "`eval all` writes it and `report` reads it; RUN/eval/bpb_SPLIT.json for another)",
    )  # fmt: skip

    p = sub.add_parser("harness", help="lm-eval tasks or groups through the bytelm model")
    common(p)
    p.add_argument("--tasks", required=True, help="comma-separated tasks or groups")
    p.add_argument("--limit", type=int, default=None, help="first N documents of each task")
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")

    p = sub.add_parser("robustness", help="bpb of a test-split slice under each perturbation")
    common(p)
    p.add_argument("--bytes", type=int, default=20_000, help="size of the slice (default 20000)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")

    p = sub.add_parser("all", help="bpb, all task groups, robustness and recall into --out DIR")
    common(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON files")
    p.add_argument("--limit", type=int, default=20, help="documents per task (default 20)")
    for group in ("zeroshot", "chars", "recall"):
        p.add_argument(
            f"--limit-{group}", type=int, default=None, help=f"override for bytelm_{group}"
        )
    p.add_argument(
        "--bpb-bytes", type=int, default=200_000, help="test bytes for bpb (default 200000)"
    )
    p.add_argument("--robust-bytes", type=int, default=20_000, help="test bytes per perturbation")
    p.add_argument(
        "--groups", default="zeroshot,chars,recall", help="comma-separated groups to run"
    )
    p.add_argument("--recall-lengths", default=None, help="e.g. 256,1k,4k (default all to 16k)")
    return parser


def _device(name: str | None) -> str:
    if name:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_eval_file(model: Path, name: str) -> Path | None:
    """RUN/eval/NAME for a run directory (the release's model card reads RUN/eval/*.json)."""
    return model / "eval" / name if (model / "model_config.json").is_file() else None


def _emit(result: dict, out: Path | None) -> None:
    from bytelm.eval.run import write_json

    print(json.dumps(result, indent=2, default=str))
    if out is not None:
        write_json(out, result)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from bytelm.eval.loading import load_for_eval

    loaded = load_for_eval(args.model, device=_device(args.device))
    if args.what == "bpb":
        from bytelm.eval.bpb import evaluate_bpb

        result = evaluate_bpb(loaded, args.corpus, args.split, args.max_bytes, args.offset)
        print(
            f"{result['model']}: {result['bpb']:.4f} bpb on {result['bytes']} bytes of {args.corpus}/{args.split}"
        )
        name = "bpb.json" if args.split == "test" else f"bpb_{args.split}.json"
        _emit(result, args.out or _run_eval_file(Path(args.model), name))
    elif args.what == "harness":
        from bytelm.eval.lm import BytelmLM
        from bytelm.eval.run import run_tasks

        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if not tasks:
            raise BytelmError("--tasks names no task")
        result = run_tasks(
            BytelmLM(loaded=loaded), tasks, args.limit, args.corpus, args.num_fewshot
        )
        _emit({"limit": args.limit, "tasks": result}, args.out)
    elif args.what == "robustness":
        from bytelm.eval.bpb import make_scorer, split_bytes, utf8_slice
        from bytelm.eval.robustness import perturbed_bpb

        text = utf8_slice(bytes(split_bytes(args.corpus, "test")[: args.bytes]))
        _emit(perturbed_bpb(make_scorer(loaded), text.decode("utf-8")), args.out)
    else:
        from bytelm.eval.run import GROUPS, evaluate_all

        limits = {
            f"bytelm_{g}": getattr(args, f"limit_{g}")
            for g in ("zeroshot", "chars", "recall")
            if getattr(args, f"limit_{g}") is not None
        }
        groups = tuple(f"bytelm_{g.strip()}" for g in args.groups.split(",") if g.strip())
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            name = unknown[0].removeprefix("bytelm_")
            raise BytelmError(f"unknown group {name!r} (choose from zeroshot, chars, recall)")
        lengths = args.recall_lengths.split(",") if args.recall_lengths else None
        evaluate_all(
            loaded, args.out, args.limit, limits, args.corpus, args.bpb_bytes, args.robust_bytes,
            groups, lengths,
        )  # fmt: skip
        print(f"wrote {args.out}/model.json bpb.json harness.json robustness.json recall.json")
    return 0
