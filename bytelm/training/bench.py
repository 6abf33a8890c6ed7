"""`bytelm bench train --pair tiny|small`: training throughput of a byte model and its baseline.

Each model of the pair trains for a few steps on its recipe's own batch (real windows of the
recipe's corpus, bytes for the hybrid, tokens for the baseline) in a fresh process, so the peak
memory of one does not hide in the other's: forward, backward and an AdamW step, timed after
warm-up steps. Reported per model: bytes/s, step time, peak memory (CUDA: max allocated; CPU: peak
resident set of the process), FLOPs per byte and achieved FLOP/s; then the ratio hybrid/baseline
of bytes/s. Writes JSON and prints a table; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import yaml

from bytelm.errors import BytelmError

SOURCE_RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PAIRS = {"tiny": ("tiny-hybrid", "tiny-baseline"), "small": ("small-hybrid", "small-baseline")}


def _windows(recipe: dict, model_config):
    """TrainWindows over the recipe's prepared corpus and the window length the model trains on."""
    from bytelm.data.prepare import ensure_prepared
    from bytelm.data.shards import load_shard
    from bytelm.data.windows import TrainWindows

    data = recipe["data"]
    tokenized = model_config.kind == "baseline"
    if data.get("path"):
        folder = Path(data["path"])
    elif tokenized:
        folder = ensure_prepared(data["corpus"], tokenizer="bpe", vocab_size=model_config.vocab_size)
    else:
        folder = ensure_prepared(data["corpus"])
    seq_len = data["seq_len"]
    if tokenized:
        seq_len = max(2, round(seq_len / model_config.bytes_per_token))
    shard = load_shard(folder, "train", "tokens" if tokenized else "bytes")
    return TrainWindows(shard, seq_len, data["batch_size"], recipe.get("seed_everything", 0)), seq_len


def measure(recipe_path: str, steps: int, warmup: int, device: str) -> dict:
    """Train one recipe's model for warmup + steps steps and time the last `steps`."""
    import torch
    import torch.nn.functional as F

    from bytelm.config import config_from_dict
    from bytelm.models import build_model
    from bytelm.training.optim import OptimizerArgs, ScheduleArgs, build_optimizer

    recipe = yaml.safe_load(Path(recipe_path).read_text())
    torch.manual_seed(recipe.get("seed_everything", 0))
    cfg = config_from_dict(recipe["model"]["config"])
    model = build_model(cfg).to(device)
    opt_args = OptimizerArgs(**recipe["model"].get("optimizer", {}))
    opt, _ = build_optimizer(model, opt_args, ScheduleArgs(warmup_steps=0), warmup + steps)
    windows, seq_len = _windows(recipe, cfg)
    autocast = torch.autocast("cuda", torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    nbytes = recipe["data"]["batch_size"] * recipe["data"]["seq_len"]

    def step(i: int) -> None:
        ids = torch.from_numpy(windows.batch(i)).to(device)  # [B, T+1]
        with autocast:
            out = model(ids[:, :-1])
            loss = F.cross_entropy(out.logits.float().flatten(0, 1), ids[:, 1:].flatten())
            loss = loss + out.aux.get("ratio_loss", 0.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt_args.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed = time.perf_counter() - start
    fpb = model.flops_per_byte(recipe["data"]["seq_len"])
    bytes_per_s = steps * nbytes / elapsed
    return {
        "recipe": Path(recipe_path).stem,
        "kind": cfg.kind,
        "params": model.num_parameters(),
        "params_non_embedding": model.num_parameters(exclude_embeddings=True),
        "batch_bytes": nbytes,
        "window": seq_len,
        "step_s": elapsed / steps,
        "bytes_per_s": bytes_per_s,
        "peak_memory_mb": peak_mb,
        "peak_memory_kind": "cuda max allocated" if device == "cuda" else "process peak RSS",
        "flops_per_byte": fpb,
        "achieved_flops": fpb * bytes_per_s,
    }


def _child(queue, *args) -> None:
    try:
        queue.put(measure(*args))
    except BaseException as err:  # reported by the parent as one line
        queue.put({"error": f"{type(err).__name__}: {err}"})


def _in_fresh_process(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise BytelmError(f"bench train {Path(args[0]).stem}: {result['error']}")
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bytelm bench train", description=__doc__.split("\n")[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="tiny", help="which recipe pair")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--recipes", default=None,
                        help="folder of the recipes (default: ./recipes, else the source tree's)")
    parser.add_argument("--out", default=None, help="JSON output (default runs/bench/train-PAIR.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        raise BytelmError("--steps must be >= 1 and --warmup >= 0")
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BytelmError("--device cuda: no CUDA device here")
    recipes = Path(args.recipes) if args.recipes else Path("recipes")
    if args.recipes is None and not recipes.is_dir():
        recipes = SOURCE_RECIPES
    paths = [recipes / f"{name}.yaml" for name in PAIRS[args.pair]]
    for path in paths:
        if not path.is_file():
            raise BytelmError(f"recipe {path} not found (use --recipes DIR)")
    rows = [_in_fresh_process(str(path), args.steps, args.warmup, device) for path in paths]
    hybrid, baseline = rows
    result = {
        "pair": args.pair,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "steps": args.steps,
        "models": rows,
        "bytes_per_s_ratio": hybrid["bytes_per_s"] / baseline["bytes_per_s"],
    }
    out = Path(args.out or f"runs/bench/train-{args.pair}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"bench train --pair {args.pair} on {result['device']}, {args.steps} timed steps")
    print(f"{'recipe':<16}{'params':>12}{'bytes/s':>12}{'step s':>9}{'peak MB':>10}{'FLOPs/B':>11}{'GFLOP/s':>9}")
    for r in rows:
        print(f"{r['recipe']:<16}{r['params']:>12,}{r['bytes_per_s']:>12,.0f}{r['step_s']:>9.3f}"
              f"{r['peak_memory_mb']:>10,.0f}{r['flops_per_byte']:>11.3g}{r['achieved_flops'] / 1e9:>9.2f}")
    print(f"hybrid / baseline bytes/s: {result['bytes_per_s_ratio']:.3f}   (JSON: {out})")
    return 0
