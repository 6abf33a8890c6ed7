"""A training run's `summary.json` and closing line: FLOPs per byte as trained, wall time over
every segment, throughput and MFU, and whether a signal stopped the run early."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bytelm.models.compiled import compile_stats
from bytelm.run_dir import SUMMARY, write_json_atomic
from bytelm.training.callbacks import RunClock
from bytelm.training.datamodule import ShardDataModule
from bytelm.training.module import LitLM
from bytelm.training.report import hardware, peak_flops


def _corpus_used(dm: ShardDataModule) -> str | None:
    """What the run trained on: the recipe's corpus, or what the prepared `data.path` holds."""
    if dm.path is None:
        return dm.corpus
    spec = json.loads((dm.folder / "manifest.json").read_text()).get("source") or {}
    return spec.get("name") if spec.get("kind") == "corpus" else spec.get("path", str(dm.folder))


def write_summary(
    run_dir: Path,
    recipe: str | None,
    seed: int,
    module: LitLM,
    dm: ShardDataModule,
    trainer,
    fpb: float,
    interrupted: str | None = None,
) -> None:
    """summary.json plus the closing lines: FLOPs per byte as trained, throughput and MFU.

    Wall time, throughput and MFU cover every segment of a resumed run; `interrupted` names
    the signal that stopped the run early (the summary then says so, and `bytelm demo` and
    `--resume auto` treat the run as unfinished)."""
    clock = next(c for c in trainer.callbacks if isinstance(c, RunClock))
    model = module.model
    if module.kind == "baseline":
        tokens = module.batches_seen * dm.batch_size * dm.model_seq_len * trainer.world_size
        compression = module.bytes_seen / max(tokens, 1)  # bytes per token
    else:
        compression = module.mean_compression()  # bytes per chunk at each stage
    actual = model.flops_per_byte(dm.seq_len, compression)
    on_gpu = trainer.accelerator.__class__.__name__.startswith("CUDA")
    peak = peak_flops(on_gpu, str(trainer.precision))
    wall_s = clock.wall_s or clock.elapsed()
    achieved = actual * module.bytes_seen / wall_s if wall_s else 0.0
    summary = {
        "kind": module.kind,
        "recipe": recipe,
        "seed": seed,
        "corpus": _corpus_used(dm),
        "data_dir": str(dm.folder),
        "params": model.num_parameters(),
        "params_non_embedding": model.num_parameters(exclude_embeddings=True),
        "flops_per_byte": fpb,
        "flops_per_byte_actual": actual,
        "compression": module.mean_compression(),
        "bytes_seen": module.bytes_seen,
        "steps": trainer.global_step,
        "nonfinite_skipped": module.nonfinite_total,
        "wall_s": wall_s,
        "bytes_per_s": module.bytes_seen / wall_s if wall_s else None,
        "final_val_bpb": module.last_val_bpb,
        "hardware": hardware(on_gpu),
        "precision": str(trainer.precision),
        "mfu": achieved / peak if peak else None,
        "compile": compile_stats() if module.hparams.get("compile") else None,
        "interrupted": interrupted,
    }
    write_json_atomic(run_dir / SUMMARY, summary)
    mfu = "unknown" if summary["mfu"] is None else f"{summary['mfu']:.1%}"
    compiled = summary["compile"]
    graphs = "" if compiled is None else (
        f"; compiled: {compiled['graphs']} graphs in {compiled['frames']} frames, "
        f"{compiled['graph_breaks']} graph breaks"
    )
    print(
        f"done: {trainer.global_step} steps, {module.bytes_seen:,} bytes in {wall_s:.0f} s; "
        f"val bpb {_rounded(summary['final_val_bpb'])}; FLOPs per byte as trained {actual:.4g}; MFU {mfu}"
        f"{graphs}",
        file=sys.stderr,
    )


def _rounded(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
