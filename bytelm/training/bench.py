"""`bytelm bench train --pair tiny|small`: training throughput of a byte model and its baseline.

Each model of the pair lives in its own worker process (so the peak memory of one does not hide
in the other's) and trains on its recipe's own batch (real windows of the recipe's corpus, bytes
for the hybrid, tokens for the baseline): forward, backward, gradient clipping and an AdamW step.
After the warm-up steps (which include any compilation, reported as `warmup_s`) the two workers
take turns, A B A B, for `--rounds` rounds of `--steps` steps each, so a machine that slows down
or speeds up during the run slows both alike; only one worker runs at a time. Reported per
model: the median bytes/s over rounds, step time, peak memory (CUDA: max allocated; CPU: peak
resident set of the worker), FLOPs per byte, achieved FLOP/s and MFU; and the median over rounds
of the per-round ratio hybrid/baseline of bytes/s. Writes JSON and prints a table; it is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import yaml

from bytelm.errors import BytelmError
from bytelm.run_dir import write_json_atomic

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


class StepRunner:
    """One recipe's model, optimizer and batches; `run(n)` trains n steps and times them."""

    def __init__(self, recipe_path: str, device: str, compile_mode: str) -> None:
        import torch

        from bytelm.config import config_from_dict
        from bytelm.models import build_model
        from bytelm.training.optim import OptimizerArgs, ScheduleArgs, build_optimizer

        recipe = yaml.safe_load(Path(recipe_path).read_text())
        torch.manual_seed(recipe.get("seed_everything", 0))
        self.recipe, self.device = Path(recipe_path).stem, device
        self.cfg = config_from_dict(recipe["model"]["config"])
        self.model = build_model(self.cfg).to(device)
        from bytelm.models import compiled

        wanted = recipe["model"].get("compile", False) if compile_mode == "recipe" else compile_mode
        self.compiled = compiled.compile_mode({"on": True, "off": False}.get(wanted, wanted))  # None: eager
        if self.compiled:
            compiled.compile_model(self.model, self.compiled)
        self.opt_args = OptimizerArgs(**recipe["model"].get("optimizer", {}))
        self.opt, _ = build_optimizer(self.model, self.opt_args, ScheduleArgs(warmup_steps=0), 10**6)
        self.windows, self.seq_len = _windows(recipe, self.cfg)
        self.window_bytes = recipe["data"]["seq_len"]
        self.nbytes = recipe["data"]["batch_size"] * self.window_bytes
        self.steps_done = 0

    def _step(self) -> None:
        import torch
        import torch.nn.functional as F

        ids = torch.from_numpy(self.windows.batch(self.steps_done)).to(self.device)  # [B, T+1]
        autocast = (torch.autocast("cuda", torch.bfloat16) if self.device == "cuda"
                    else torch.autocast("cpu", enabled=False))
        with autocast:
            out = self.model(ids[:, :-1])
            loss = F.cross_entropy(out.logits.float().flatten(0, 1), ids[:, 1:].flatten())
            loss = loss + out.aux.get("ratio_loss", 0.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.opt_args.grad_clip or float("inf"))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.steps_done += 1

    def run(self, steps: int) -> float:
        """Seconds for `steps` training steps (the device synchronised at both ends)."""
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self._step()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def info(self) -> dict:
        """What does not depend on timing: sizes, FLOPs per byte, peak memory so far."""
        import torch

        if self.device == "cuda":
            peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "recipe": self.recipe,
            "kind": self.cfg.kind,
            "params": self.model.num_parameters(),
            "params_non_embedding": self.model.num_parameters(exclude_embeddings=True),
            "batch_bytes": self.nbytes,
            "window": self.seq_len,
            "compiled": self.compiled,
            "peak_memory_mb": peak_mb,
            "peak_memory_kind": "cuda max allocated" if self.device == "cuda" else "process peak RSS",
            "flops_per_byte": self.model.flops_per_byte(self.window_bytes),
        }


def _worker(conn, recipe_path: str, device: str, compile_mode: str) -> None:
    """Serve ("run", n) -> seconds and ("info",) -> dict until told to stop; errors as one line."""
    try:
        runner = StepRunner(recipe_path, device, compile_mode)
        conn.send("ready")
        while (msg := conn.recv()) is not None:
            conn.send(runner.run(msg[1]) if msg[0] == "run" else runner.info())
    except BaseException as err:  # reported by the parent as one line
        conn.send({"error": f"{type(err).__name__}: {err}"})


class Worker:
    """A StepRunner in a fresh spawned process, driven over a pipe."""

    def __init__(self, recipe_path: str, device: str, compile_mode: str) -> None:
        self.name = Path(recipe_path).stem
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, recipe_path, device, compile_mode))
        self.proc.start()
        self._answer()

    def _answer(self):
        reply = self.conn.recv()
        if isinstance(reply, dict) and "error" in reply:
            self.close()
            raise BytelmError(f"bench train {self.name}: {reply['error']}")
        return reply

    def run(self, steps: int) -> float:
        self.conn.send(("run", steps))
        return self._answer()

    def info(self) -> dict:
        self.conn.send(("info",))
        return self._answer()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.terminate()


def alternate(workers: list[Worker], rounds: int, steps: int, warmup: int) -> tuple[list[float], list[list[float]]]:
    """Warm-up seconds per worker, then per worker the seconds of each round, taken A B A B."""
    warm = [w.run(warmup) if warmup else 0.0 for w in workers]
    seconds: list[list[float]] = [[] for _ in workers]
    for _ in range(rounds):
        for i, w in enumerate(workers):
            seconds[i].append(w.run(steps))
    return warm, seconds


def model_row(info: dict, steps: int, warm_s: float, seconds: list[float], peak: float | None) -> dict:
    """One model's row: median bytes/s over rounds, achieved FLOP/s and MFU."""
    per_round = [steps * info["batch_bytes"] / s for s in seconds]
    bytes_per_s = statistics.median(per_round)
    achieved = info["flops_per_byte"] * bytes_per_s
    return {
        **info,
        "warmup_s": warm_s,
        "round_bytes_per_s": per_round,
        "bytes_per_s": bytes_per_s,
        "step_s": info["batch_bytes"] / bytes_per_s,
        "achieved_flops": achieved,
        "mfu": achieved / peak if peak else None,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bytelm bench train", description=__doc__.split("\n")[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="tiny", help="which recipe pair")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (A B A B ...)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    parser.add_argument("--compile", choices=["recipe", "on", "off", "whole", "block"], default="recipe",
                        help="torch.compile the models: as each recipe says (default), or force it "
                        "(on = whole; block: each residual block alone)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--recipes", default=None,
                        help="folder of the recipes (default: ./recipes, else the source tree's)")
    parser.add_argument("--out", default=None, help="JSON output (default runs/bench/train-PAIR.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
        raise BytelmError("--steps and --rounds must be >= 1 and --warmup >= 0")
    import torch

    from bytelm.training.report import peak_flops

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
    workers: list[Worker] = []
    try:
        for path in paths:
            workers.append(Worker(str(path), device, args.compile))
        warm, seconds = alternate(workers, args.rounds, args.steps, args.warmup)
        infos = [w.info() for w in workers]
    finally:
        for w in workers:
            w.close()
    peak = peak_flops(device == "cuda", "bf16" if device == "cuda" else "fp32")
    rows = [model_row(info, args.steps, w, s, peak) for info, w, s in zip(infos, warm, seconds)]
    hybrid, baseline = rows
    ratios = [h / b for h, b in zip(hybrid["round_bytes_per_s"], baseline["round_bytes_per_s"])]
    result = {
        "pair": args.pair,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "rounds": args.rounds,
        "steps": args.steps,
        "models": rows,
        "round_ratios": ratios,
        "bytes_per_s_ratio": statistics.median(ratios),
    }
    out = Path(args.out or f"runs/bench/train-{args.pair}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(f"bench train --pair {args.pair} on {result['device']}: {args.rounds} rounds of {args.steps} "
          "steps per model, alternating")
    print(f"{'recipe':<16}{'params':>12}{'compiled':>9}{'warmup s':>9}{'bytes/s':>11}{'step s':>8}"
          f"{'peak MB':>9}{'FLOPs/B':>10}{'GFLOP/s':>9}{'MFU':>7}")
    for r in rows:
        mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(f"{r['recipe']:<16}{r['params']:>12,}{r['compiled'] or 'no':>9}{r['warmup_s']:>9.1f}"
              f"{r['bytes_per_s']:>11,.0f}{r['step_s']:>8.3f}{r['peak_memory_mb']:>9,.0f}"
              f"{r['flops_per_byte']:>10.3g}{r['achieved_flops'] / 1e9:>9.2f}{mfu:>7}")
    spread = f"{min(ratios):.3f}..{max(ratios):.3f}"
    print(f"hybrid / baseline bytes/s: {result['bytes_per_s_ratio']:.3f} (median of rounds, range {spread})"
          f"   (JSON: {out})")
    return 0
