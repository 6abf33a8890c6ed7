"""`bytelm bench mixers`: forward + backward time and memory of every layout letter's mixer.

Each mixer (m Mamba-2, s sliding-window attention, t full attention, r RetNet, l linear
attention, c S4D, e Mega) is built alone at the same d_model and timed on the same input,
forward plus backward of a sum over its output, after warm-up runs; the ratio to the Mamba-2
layer of the same run is reported beside it. Memory: on CUDA the peak allocated bytes, on CPU
the bytes autograd saves for the backward pass (the activation memory that grows with B * T).
The default kernel path is used: references on CPU, Triton on CUDA. Prints a table and writes
JSON; it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bytelm.errors import BytelmError
from bytelm.layers.init import STD
from bytelm.layers.network import LevelSpec, make_mixer

LETTERS = ("m", "s", "t", "r", "l", "c", "e")
NAMES = {"m": "Mamba-2", "s": "sliding-window attn", "t": "full attention", "r": "RetNet",
         "l": "linear attention", "c": "S4D-Real", "e": "Mega"}
LETTERS += ("g", "d", "w")
NAMES.update(g="GLA", d="Gated DeltaNet", w="RWKV-7 time mix")
SHAPES = ((8, 512, 96), (2, 2048, 256))  # (batch, length, d_model)
QUICK_SHAPES = ((2, 40, 32),)


def spec_for(d_model: int) -> LevelSpec:
    """The settings every mixer is built with at one width (tiny-hybrid's at d_model 96)."""
    return LevelSpec(
        d_model=d_model, d_intermediate=2 * d_model, n_heads=4, n_kv_heads=2, window=128, sinks=4,
        ssm_d_state=32 if d_model < 256 else 64, ssm_headdim=16 if d_model < 256 else 32,
        ssm_expand=2, ssm_ngroups=1, ssm_d_conv=4, ssm_chunk_size=64, rope_base=10000.0,
        norm_eps=1e-5, rec_heads=4, rec_expand=2, s4d_d_state=16, s4d_headdim=16, mega_ema_dim=8,
        mega_headdim=16, mega_window=128, out_std=STD,
        gla_heads=4, gdn_heads=2 if d_model < 256 else 4, gdn_expand_v=2, rwkv_heads=4,
    )


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves while `fn` runs (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def measure(letter: str, shape: tuple[int, int, int], device: torch.device, warmup: int, repeats: int) -> dict:
    """Median forward + backward milliseconds and memory of one mixer at (B, T, D)."""
    batch, length, d_model = shape
    torch.manual_seed(0)
    mixer = make_mixer(letter, spec_for(d_model)).to(device)
    x = torch.randn(batch, length, d_model, device=device, requires_grad=True)

    def run() -> None:
        y, _ = mixer(x)
        y.float().sum().backward()

    for _ in range(warmup):
        run()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    memory = torch.cuda.max_memory_allocated() if cuda else _saved_bytes(lambda: mixer(x)[0].sum())
    return {
        "letter": letter, "mixer": NAMES[letter], "batch": batch, "length": length, "d_model": d_model,
        "params": sum(p.numel() for p in mixer.parameters()),
        "ms": 1e3 * sorted(times)[len(times) // 2],
        "memory_mb": memory / 2**20, "memory_kind": "peak allocated" if cuda else "saved for backward",
    }


def format_table(rows: list[dict]) -> str:
    lines = [f"{'shape B,T,D':<14}{'letter':<7}{'mixer':<21}{'params':>9}{'fwd+bwd ms':>12}{'x Mamba-2':>10}{'MB':>9}"]
    for r in rows:
        shape = f"{r['batch']},{r['length']},{r['d_model']}"
        lines.append(f"{shape:<14}{r['letter']:<7}{r['mixer']:<21}{r['params']:>9,}{r['ms']:>12.2f}"
                     f"{r['vs_mamba2']:>10.2f}{r['memory_mb']:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bytelm bench mixers", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke run)")
    parser.add_argument("--letters", default="".join(LETTERS), help="which letters (default: all)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is kept)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", default="runs/bench/mixers.json", help="JSON output path")
    args = parser.parse_args(argv)
    letters = list(dict.fromkeys(args.letters.lower()))
    unknown = [c for c in letters if c not in LETTERS]
    if unknown or not letters:
        raise BytelmError(f"--letters: {''.join(unknown) or 'none'} not among {''.join(LETTERS)}")
    if args.repeats < 1 or args.warmup < 0:
        raise BytelmError("--repeats must be >= 1 and --warmup >= 0")
    if "m" not in letters:
        letters.insert(0, "m")  # every row is compared with Mamba-2 of the same run
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BytelmError("--device cuda: no CUDA device here")
    rows = []
    for shape in QUICK_SHAPES if args.quick else SHAPES:
        group = [measure(c, shape, torch.device(device), args.warmup, args.repeats) for c in letters]
        mamba = next(r["ms"] for r in group if r["letter"] == "m")
        for r in group:
            r["vs_mamba2"] = r["ms"] / mamba
        rows += group
    where = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    payload = {"device": where, "repeats": args.repeats, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"bench mixers on {where}, median of {args.repeats}")
    print(format_table(rows))
    print(f"(JSON: {out})")
    return 0
