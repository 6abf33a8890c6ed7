"""`bytelm bench generate`: decode speed and memory against context length, hybrid vs baseline.

For each context length (in bytes), the benchmark builds both models' decoding states for that
context by prefilling it in pieces, then times a fixed number of steps through
`bytelm.generation.decode`, the loop every decoder of bytelm runs (`--compile`: with a compiled
step, `torch.compile`'s or ahead of time, compiled during untimed warm-up steps), each picking
the next id by sampling at temperature 1 from a generator seeded alike for every round: a greedy
continuation of a long context can fall into a loop that starts no chunks (a trained hybrid's
greedy bytes after 64K of context: 512 bytes per chunk, against 3.3 after 1K), which would time
the hybrid's outer level alone. The two models run in turn for
`--rounds` rounds, each round from the same state, so a machine that slows down slows both. It
reports decode bytes/s (the baseline's tokens/s times its bytes per token; the median over
rounds), the ratio hybrid / baseline per context (the median of the per-round ratios), the
size of the decoding state, and the peak memory of the decode phase: `max_memory_allocated` on a
GPU; on a CPU, which has no allocator peak counter, the weights plus the state plus the
Python-level peak seen by tracemalloc over a second, untimed decode (tracing slows Python down,
so it never runs while the clock does). The hybrid's state is bounded (SSM states and sliding
windows), so its memory must stay flat as the context grows; the baseline's KV cache grows
linearly. For the hybrid it also reports the decoded bytes per chunk at each stage (from a
forward pass over the decoded bytes, whose chunking equals the decode's): the main network runs
once per chunk, so this says how much of the decode time it can take.

Models are random-initialised at the sizes of the pair's recipes (`recipes/<pair>_*.yaml`),
or loaded from trained run dirs / release folders with `--runs`. Writes JSON and a PNG plot and
prints a table (bytelm.commands.bench_generate_report); it is a benchmark, not a test.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bytelm.commands.arguments import ArgumentParser, positive_int
from bytelm.commands.bench_generate_report import format_table, plot
from bytelm.errors import BytelmError
from bytelm.generation import COMPILE_KINDS, compiled_step, decode, sample_next
from bytelm.layers.state import tree_map, tree_nbytes

DEFAULT_CONTEXTS = "1K,4K,16K,64K"
KINDS = ("hybrid", "baseline")


def parse_contexts(text: str) -> list[int]:
    """Context lengths in bytes from '1K,4K,16K' or '512,2048' (K = 1024)."""
    contexts = []
    for part in text.split(","):
        part = part.strip()
        kilo = part[-1:] in ("k", "K")
        digits = part[:-1] if kilo else part
        if not digits.isdigit() or int(digits) == 0:
            raise BytelmError(f"--contexts: {part!r} is not a length such as 1K or 512")
        scale = 1024 if kilo else 1
        contexts.append(int(digits) * scale)
    return sorted(set(contexts))


def recipe_models(pair: str, recipes: Path) -> dict[str, nn.Module]:
    """Random-initialised hybrid and baseline of a pair, at the sizes of its recipes: of the
    recipes whose name has `pair` as a word, the one of each kind with the shortest name
    (`tiny-hybrid` before `tiny-hybrid-2stage`)."""
    import yaml

    from bytelm.models import build_model

    found: dict[str, nn.Module] = {}
    named = [(re.split(r"[_-]", p.stem), p) for p in recipes.glob("*.yaml")]
    for *_, path in sorted((len(words), p.name, p) for words, p in named if pair in words):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        cfg = ((doc.get("model") or {}).get("config")) if isinstance(doc, dict) else None
        if isinstance(cfg, dict):
            config = _from_dict(cfg, path)
            if config.kind not in found:
                print(f"bench generate: {config.kind} sized as {path.name}", file=sys.stderr)
                found[config.kind] = build_model(config)
    missing = {"hybrid", "baseline"} - set(found)
    if missing:
        raise BytelmError(
            f"no {' or '.join(sorted(missing))} recipe for pair {pair!r} in {recipes} "
            f"(expected a recipe named like {pair}_hybrid.yaml with model.config.kind)"
        )
    return found


def _from_dict(cfg: dict, source: Path) -> Any:
    """A config from a recipe's model mapping (keys left out take their defaults)."""
    from bytelm.config import config_from_dict

    try:
        return config_from_dict(cfg)
    except (TypeError, ValueError, BytelmError) as err:
        raise BytelmError(f"{source}: invalid model config: {err}") from err


def run_models(paths: list[str], device: torch.device) -> dict[str, nn.Module]:
    """A trained hybrid and baseline from run dirs or release folders."""
    from bytelm.checkpoint import load_model

    found: dict[str, nn.Module] = {}
    for path in paths:
        loaded = load_model(path, device=device)
        found[loaded.config.kind] = loaded.model
    if set(found) != {"hybrid", "baseline"}:
        raise BytelmError("--runs needs one hybrid and one baseline run dir or release folder")
    return found


def bytes_per_id(model: nn.Module) -> float:
    """Bytes one model id covers: 1 for the byte model, bytes_per_token for the baseline."""
    return float(model.config.bytes_per_token) if model.config.kind == "baseline" else 1.0


def _greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)  # [B]


def sampler(seed: int, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The timed decodes' pick: ids [B] sampled at temperature 1 from logits [B, V], with a
    generator seeded by `seed`, so every decode from one state makes the same ids."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return lambda logits: sample_next(logits, 1.0, generator=gen)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Prepared:
    """One model at one context, ready to time: its step (eager or compiled, warmed up), the
    logits and state after the context and warm-up, and what the untimed passes measured."""

    step: Any
    logits: torch.Tensor  # [1, V]
    state: Any
    row: dict[str, Any]
    seed: int  # the sampler's (`sampler`)


def prepare(
    model: nn.Module,
    context: int,
    steps: int,
    piece: int,
    device: torch.device,
    seed: int,
    compile_step: str | None = None,
) -> Prepared:
    """Prefill `context` bytes' worth of ids in pieces and warm the step up; then one untimed
    decode of `steps` steps from a copy of the state (traced by tracemalloc on a CPU) gives the
    peak memory and the decoded ids, whose forward pass gives the bytes per chunk."""
    per_id = bytes_per_id(model)
    n_ids = max(1, math.ceil(context / per_id))
    vocab = 256 if model.config.kind == "hybrid" else model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    low = 32 if model.config.kind == "hybrid" else 0  # printable bytes for the byte model
    ids = torch.randint(low, min(vocab, 127) if low else vocab, (1, n_ids), generator=gen)
    ids = ids.to(device)  # [1, n_ids]
    warmup = 16 if compile_step else 2  # a compiled step meets its graphs (both branches) here
    step = compiled_step(model, compile_step) if compile_step else model.step
    with torch.inference_mode():
        state = model.allocate_state(1, max_len=n_ids + warmup + 1 + steps)
        started = time.perf_counter()
        for start in range(0, n_ids, piece):
            logits, state = model.prefill(ids[:, start : start + piece], state)
        logits = logits[:, -1]  # [1, V]
        _sync(device)
        prefill_s = time.perf_counter() - started
        new, state = decode(step, logits, state, warmup + 1, _greedy)
        logits, state = step(new[:, -1], state)
        state_bytes = tree_nbytes(state)
        traced = tree_map(torch.clone, state)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            new, _ = decode(step, logits, traced, steps + 1, sampler(seed, device))
            peak = torch.cuda.max_memory_allocated(device)  # before the forward pass below
        else:
            tracemalloc.start()
            new, _ = decode(step, logits, traced, steps + 1, sampler(seed, device))
            _, python_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
            peak = weights + state_bytes + python_peak
        del traced
        trained = model.max_context
        seen = new if trained is None else new[:, -trained:]  # what one forward pass may hold
        per_chunk = model(seen).aux.get("compression")  # bytes per chunk per stage; None: no chunking
    row = {
        "context_bytes": context,
        "context_ids": n_ids,
        "beyond_trained_context": trained is not None and n_ids > trained,
        "prefill_s": prefill_s,
        "state_bytes": state_bytes,
        "peak_bytes": int(peak),
        "decoded_bytes_per_chunk": None if per_chunk is None else [float(c) for c in per_chunk],
    }
    return Prepared(step, logits, state, row, seed)


def time_decode(prepared: Prepared, steps: int, device: torch.device) -> float:
    """Seconds for `steps` sampled steps from a copy of the prepared state (the copy untimed)."""
    with torch.inference_mode():  # a copy made outside would not be an inference tensor: a new graph
        state = tree_map(torch.clone, prepared.state)
        _sync(device)
        started = time.perf_counter()
        decode(prepared.step, prepared.logits, state, steps + 1, sampler(prepared.seed, device))  # `steps` model steps
        _sync(device)
    return time.perf_counter() - started


def run_bench(
    models: dict[str, nn.Module],
    contexts: list[int],
    steps: int,
    piece: int,
    device: torch.device,
    seed: int,
    compile_step: str | None = None,
    rounds: int = 3,
) -> dict[str, Any]:
    """Every model at every context, one result row per (model, context). At each context both
    models are prepared, then timed in turn (hybrid, baseline, hybrid, ...) for `rounds` rounds,
    so a machine that slows down slows both; a row's bytes/s is the median over its rounds and
    the context's ratio the median of the per-round ratios."""
    results, ratios = [], {}
    for model in models.values():
        model.to(device).eval()
    per_id = {kind: bytes_per_id(models[kind]) for kind in KINDS}
    for context in contexts:
        ready = {}
        for kind in KINDS:
            model = models[kind]
            print(f"bench generate: {kind} at {context} bytes ...", file=sys.stderr, flush=True)
            pieces = max(1, math.ceil(piece / per_id[kind]))
            ready[kind] = prepare(model, context, steps, pieces, device, seed, compile_step)
        speeds: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(rounds):
            for kind in KINDS:
                speeds[kind].append(steps * per_id[kind] / time_decode(ready[kind], steps, device))
        for kind in KINDS:
            median = statistics.median(speeds[kind])
            results.append({
                "kind": kind, **ready[kind].row, "decode_s": steps * per_id[kind] / median,
                "ids_per_s": median / per_id[kind], "bytes_per_s": median,
                "round_bytes_per_s": speeds[kind],
            })
        ratios[str(context)] = [h / b for h, b in zip(speeds["hybrid"], speeds["baseline"])]
        del ready
    hybrid_state = [r["state_bytes"] for r in results if r["kind"] == "hybrid"]
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "rounds": rounds,
        "compiled_step": compile_step,
        "models": {
            kind: {
                "params": int(m.num_parameters()),
                "bytes_per_id": bytes_per_id(m),
                "config": m.config.to_dict(),
            }
            for kind, m in models.items()
        },
        "results": results,
        "round_ratios_by_context": ratios,
        "ratio_by_context": {c: statistics.median(r) for c, r in ratios.items()},
        "hybrid_state_flat": max(hybrid_state) == min(hybrid_state),
    }


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="bytelm bench generate",
        description="Decode bytes/s and memory at growing context, hybrid vs baseline.",
    )
    parser.add_argument("--pair", default="tiny", help="recipe pair (recipes/<pair>_*.yaml)")
    parser.add_argument(
        "--runs",
        nargs=2,
        metavar="DIR",
        default=None,
        help="trained hybrid and baseline (run dirs or release folders)",
    )
    parser.add_argument(
        "--contexts",
        default=DEFAULT_CONTEXTS,
        help=f"context lengths in bytes (default {DEFAULT_CONTEXTS})",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=64, help="timed decode steps per context (default 64)"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="timed rounds per context, the two models in turn (default 3; the median is kept)",
    )
    parser.add_argument(
        "--piece",
        type=positive_int,
        default=4096,
        help="bytes prefilled per call when building the context (default 4096)",
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="jit",
        choices=COMPILE_KINDS,
        help="decode with a compiled step, compiled during warm-up (not timed): jit "
        "(torch.compile, the default) or aot (AOTInductor, no per-call guards)",
    )
    parser.add_argument("--recipes", default=None, help="recipe folder (default: ./recipes)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and context")
    parser.add_argument("--out", default="runs/bench", help="folder for the JSON and PNG")
    return parser


def _recipes_folder(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    for candidate in (Path.cwd() / "recipes", Path(__file__).resolve().parents[2] / "recipes"):
        if candidate.is_dir():
            return candidate
    raise BytelmError("no recipes folder found; pass --recipes DIR or --runs")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    contexts = parse_contexts(args.contexts)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BytelmError(f"device {device} asked for, but no CUDA device is available")
    torch.manual_seed(args.seed)
    if args.runs:
        models, source = run_models(args.runs, device), "trained: " + ", ".join(args.runs)
    else:
        models, source = recipe_models(args.pair, _recipes_folder(args.recipes)), "random init"
    report = run_bench(
        models, contexts, args.steps, args.piece, device, args.seed, args.compile, args.rounds
    )
    report = {"pair": args.pair, "source": source, **report}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"generate_{args.pair}_{device.type}" + {None: "", "jit": "_compiled", "aot": "_aot"}[args.compile]
    tmp = out / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / f"{stem}.json")
    plot(report, out / f"{stem}.png")
    mode = f"compiled ({args.compile})" if args.compile else "eager"
    print(
        f"bench generate: pair {args.pair} ({source}) on {device}, {args.rounds} rounds of "
        f"{args.steps} {mode} steps, the two models in turn (medians)"
    )
    print(format_table(report))
    flat = "flat" if report["hybrid_state_flat"] else "NOT flat"
    print(f"hybrid decode state is {flat} across contexts; wrote {out / stem}.json and .png")
    return 0
