"""The settings of the `entropy` chunking rule (BLT, arXiv 2412.09871), checked as one unit.

An entropy stage (stage 0 only: the entropy model reads bytes) starts a chunk where a frozen
byte LM is uncertain about the next byte. Its settings on `ModelConfig`:

- `entropy_model`: a run dir or release folder of a byte model (required);
- `entropy_mode`: "global" (a chunk starts at t when H_t > theta, BLT's global rule) or
  "relative" (when H_t - H_{t-1} > theta, BLT's monotonic rule);
- exactly one of `entropy_threshold` (theta in nats, fixed) and `target_compression[0]` (bytes
  per chunk; theta is then calibrated on training bytes when training starts);
- `entropy_calibration`: what the calibration found (the threshold, its target, the bytes it
  read, the compression it measured on them), written by training into the run's config so a
  loaded model chunks exactly as it trained. With a fixed threshold it still records the
  compression measured on training bytes, which the planned FLOPs per byte use.
"""

from __future__ import annotations

import math
from typing import Any

from bytelm.config import ConfigError

ENTROPY_MODES = ("global", "relative")
ENTROPY_LM_RECIPE = "recipes/tiny-entropy-lm.yaml"
_RECORD_KEYS = ("threshold", "target", "bytes", "windows", "seq_len", "train_compression")


def make_command(path: str) -> str:
    """The command that trains an entropy model into `path`."""
    return f"bytelm train --config {ENTROPY_LM_RECIPE} --run-dir {path}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_entropy_settings(cfg: Any) -> None:
    """ConfigError naming the first entropy setting of a ModelConfig that does not fit."""
    if cfg.entropy_mode not in ENTROPY_MODES:
        raise ConfigError(f"entropy_mode: must be one of {', '.join(ENTROPY_MODES)}, got {cfg.entropy_mode!r}")
    if "entropy" not in cfg.chunking:
        for name in ("entropy_model", "entropy_threshold", "entropy_calibration"):
            if getattr(cfg, name) is not None:
                raise ConfigError(f"{name}: set, but no stage uses chunking 'entropy'")
        return
    if not isinstance(cfg.entropy_model, str) or not cfg.entropy_model:
        raise ConfigError(
            "entropy_model: the entropy stage needs a byte model (a run dir or release folder); "
            f"train one with `{make_command('runs/tiny-entropy-lm')}`"
        )
    threshold, target = cfg.entropy_threshold, cfg.target_compression[0]
    if threshold is not None:
        if not _number(threshold) or threshold < 0:
            raise ConfigError(f"entropy_threshold: must be a non-negative number of nats, got {threshold!r}")
        cfg.entropy_threshold = float(threshold)
        if target is not None:
            raise ConfigError(
                f"entropy_threshold: {threshold} and target_compression {target} both given for the "
                "entropy stage; give one (target_compression: [null] keeps the fixed threshold)"
            )
    elif target is None:
        raise ConfigError(
            "target_compression: the entropy stage needs a target to calibrate its threshold "
            "toward, or a fixed entropy_threshold"
        )
    elif target <= 1.0:
        raise ConfigError(f"target_compression: stage 0 must be > 1 for entropy chunking, got {target}")
    if cfg.entropy_calibration is not None:
        _check_record(cfg.entropy_calibration, threshold, target)


def _check_record(record: Any, threshold: float | None, target: float | None) -> None:
    if not isinstance(record, dict) or sorted(record) != sorted(_RECORD_KEYS):
        raise ConfigError(f"entropy_calibration: must be a mapping with keys {', '.join(_RECORD_KEYS)}")
    if not _number(record["threshold"]) or record["threshold"] < 0:
        raise ConfigError(f"entropy_calibration: threshold must be a non-negative number, got {record['threshold']!r}")
    if not _number(record["train_compression"]) or record["train_compression"] < 1:
        raise ConfigError(f"entropy_calibration: train_compression must be >= 1, got {record['train_compression']!r}")
    if threshold is not None and record["threshold"] != threshold:
        raise ConfigError(
            f"entropy_calibration: measured at threshold {record['threshold']}, but entropy_threshold "
            f"is {threshold}; drop entropy_calibration to measure again"
        )
    if record["target"] != target:
        raise ConfigError(
            f"entropy_calibration: calibrated toward target {record['target']}, but target_compression "
            f"is {target}; drop entropy_calibration to calibrate again"
        )


def entropy_threshold(cfg: Any) -> float | None:
    """The threshold the entropy stage uses: the fixed one, else the calibrated one, else None
    (calibration has not run yet)."""
    if cfg.entropy_threshold is not None:
        return cfg.entropy_threshold
    record = cfg.entropy_calibration
    return None if record is None else float(record["threshold"])


def measured_compression(cfg: Any) -> float:
    """Bytes per chunk that calibration measured on training bytes (a fixed threshold's
    stand-in for a target)."""
    if cfg.entropy_calibration is None:
        raise ConfigError(
            "target_compression: the entropy stage has a fixed threshold and no calibration yet, "
            "so its bytes per chunk are unknown until training measures them (or pass compression)"
        )
    return float(cfg.entropy_calibration["train_compression"])


def calibration_record(
    threshold: float, target: float | None, windows: int, seq_len: int, compression: float
) -> dict:
    """The `entropy_calibration` mapping training stores in the run's config."""
    return {
        "threshold": float(threshold), "target": target, "bytes": windows * seq_len,
        "windows": windows, "seq_len": seq_len, "train_compression": float(compression),
    }
