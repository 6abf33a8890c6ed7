"""The entropy rule's byte LM: loading it, and calibrating its threshold on training bytes.

`load_entropy_model` reads a run dir or release folder with bytelm's own loader (checksums and
weight shapes checked) and refuses anything that is not a byte model. `calibrate` runs the LM
over windows of training bytes, exactly as training feeds the hybrid (windows of `seq_len`
bytes, each from a fresh state, a chunk at the first byte), and picks the threshold that gives
the target bytes per chunk on them: with k = round(positions / target) - windows boundaries to
place beyond the forced first ones, theta is the midpoint between the k-th and (k+1)-th largest
scores, so exactly k scores exceed it (BLT sets its global threshold by hand; a target makes the
entropy rule comparable with the others at matched compression).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bytelm.config import ModelConfig
from bytelm.config_entropy import calibration_record, entropy_threshold, make_command
from bytelm.errors import BytelmError
from bytelm.layers.entropy_chunking import EntropyRouter, entropy_scores

CALIBRATION_BYTES = 1 << 18  # training bytes read to set the threshold
CALIBRATION_BATCH = 32  # windows per LM pass


def load_entropy_model(path: str) -> nn.Module:
    """The byte LM of a run dir or release folder, on CPU, frozen, float32, in eval mode."""
    from bytelm.checkpoint import load_model

    folder = Path(path)
    if not folder.exists():
        raise BytelmError(f"entropy_model: {path} not found; make it with `{make_command(path)}`")
    with torch.device("cpu"):  # real weights even where the hybrid is built on another device
        loaded = load_model(folder)
    if loaded.config.kind != "hybrid":
        raise BytelmError(
            f"entropy_model: {path} is a {loaded.config.kind} model over tokens; the entropy rule "
            "needs a byte model (kind hybrid)"
        )
    return loaded.model.float().eval().requires_grad_(False)


def entropy_router(cfg: ModelConfig) -> EntropyRouter:
    """The router of an entropy stage: the config's LM, mode and threshold (None: to calibrate)."""
    return EntropyRouter(load_entropy_model(cfg.entropy_model), cfg.entropy_mode, entropy_threshold(cfg))


def calibration_windows(data: np.ndarray, seq_len: int, n_bytes: int = CALIBRATION_BYTES) -> torch.Tensor:
    """[N, seq_len] windows spread evenly over a byte array (N = n_bytes / seq_len, at least 1)."""
    if len(data) < seq_len:
        raise BytelmError(f"entropy calibration: {len(data)} training bytes are fewer than one window")
    count = max(1, min(n_bytes // seq_len, len(data) // seq_len))
    starts = np.linspace(0, len(data) - seq_len, count).astype(np.int64)
    return torch.from_numpy(np.stack([data[s:s + seq_len] for s in starts]).astype(np.int64))


def window_scores(router: EntropyRouter, windows: torch.Tensor) -> torch.Tensor:
    """The rule's score at every position of every window [N, T] (position 0 is forced anyway)."""
    device = next(router.lm.parameters()).device
    out = []
    for rows in windows.split(CALIBRATION_BATCH):
        h, before, _, _ = router.entropies(rows.to(device))
        out.append(entropy_scores(h, before, router.mode).cpu())
    return torch.cat(out)


def threshold_for(scores: torch.Tensor, target: float) -> float:
    """The threshold (>= 0) at which windows of `scores` [N, T] chunk at `target` bytes per chunk."""
    n, t = scores.shape
    extra = scores[:, 1:].flatten().sort(descending=True).values.double()
    k = min(max(round(n * t / target) - n, 0), extra.numel())
    if k == 0:
        return max(float(extra[0]), 0.0) if extra.numel() else 0.0
    if k == extra.numel():
        return 0.0
    return max(float(extra[k - 1] + extra[k]) / 2, 0.0)


def compression_at(scores: torch.Tensor, threshold: float) -> float:
    """Bytes per chunk of windows of `scores` [N, T] at `threshold` (position 0 always starts one)."""
    chunks = scores.shape[0] + int((scores[:, 1:] > threshold).sum())
    return scores.numel() / chunks


def calibrate(cfg: ModelConfig, router: EntropyRouter, data: np.ndarray, seq_len: int) -> dict:
    """The `entropy_calibration` record for training bytes `data` in windows of `seq_len`: the
    calibrated threshold toward `target_compression[0]`, or the fixed one, and the compression
    it gives there. The router's threshold is set to it."""
    windows = calibration_windows(data, seq_len)
    scores = window_scores(router, windows)
    target = cfg.target_compression[0]
    threshold = cfg.entropy_threshold if target is None else threshold_for(scores, target)
    router.threshold = threshold
    return calibration_record(threshold, target, len(windows), seq_len, compression_at(scores, threshold))
