"""Callbacks and plugins of a bytelm run: sealed step checkpoints, signals, progress bar, clock.

Checkpoints are `checkpoints/step-NNNNNNN.ckpt` every N optimizer steps, at the end, and when the
run is told to stop (SIGINT or SIGTERM). Each is written to a temporary name, sealed with its
size and sha256 (see `bytelm.run_dir`) and renamed into place, and `last.ckpt` then points at it,
so a run killed at any instant leaves only whole checkpoints behind, and a damaged one is known
as such. Retention keeps the newest `keep` intact checkpoints and never an intact one less than
a damaged one.

A SIGINT or SIGTERM does not kill the run: the step under way finishes, a checkpoint of it is
saved, and the trainer stops; the `train` command then writes the summary marked interrupted and
exits with 128 + the signal number (130, 143), the shell's code for death by that signal.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from bytelm.errors import BytelmError
from bytelm.run_dir import (
    METRICS,
    STEP_CHECKPOINT,
    atomic_output,
    checkpoint_problem,
    point_last,
    remove_checkpoint,
    step_checkpoints,
    step_of,
    write_atomic,
    write_seal,
)
from bytelm.training.csv_logger import truncate_metrics

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file, seal it (size, sha256), then rename it onto the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            torch.save(checkpoint, tmp)
            write_seal(tmp, path)


class StepCheckpoint(Callback):
    """Save every `every_n_steps` optimizer steps, at the end and on a stop signal; keep the
    newest `keep` intact checkpoints."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 1000, keep: int = 2) -> None:
        """
        Args:
            dirpath: folder of the checkpoints (default: the run directory's checkpoints/).
            every_n_steps: save every this many optimizer steps (0: only at the end).
            keep: how many intact checkpoints to keep, newest first.
        """
        if every_n_steps < 0 or keep < 1:
            raise BytelmError(
                f"checkpoint.every_n_steps {every_n_steps} / checkpoint.keep {keep}: "
                "every_n_steps must be >= 0 and keep >= 1"
            )
        self.dirpath, self.every_n_steps, self.keep = Path(dirpath), every_n_steps, keep
        self._last_saved = -1
        self._verified: dict[tuple[str, int, int], bool] = {}
        self.stop_signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}

    # ---- saving and retention --------------------------------------------------------------

    def _save(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        if step == self._last_saved:
            return
        path = self.dirpath / STEP_CHECKPOINT.format(step=step)
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            point_last(self.dirpath, path)
            self._retain(step)
        trainer.strategy.barrier("bytelm-checkpoint")
        self._last_saved = step

    def _intact(self, path: Path) -> bool:
        stat = path.stat()
        key = (path.name, stat.st_size, stat.st_mtime_ns)
        if key not in self._verified:
            self._verified[key] = checkpoint_problem(path) is None
        return self._verified[key]

    def _retain(self, step: int) -> None:
        """Keep the newest `keep` intact checkpoints up to `step`; drop damaged ones and those of
        later steps (left by a run resumed from an older checkpoint: another history)."""
        kept = 0
        for path in reversed(step_checkpoints(self.dirpath)):
            if step_of(path) <= step and kept < self.keep and self._intact(path):
                kept += 1
            else:
                remove_checkpoint(path)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self._save(trainer)
        stop = trainer.strategy.reduce_boolean_decision(self.stop_signal is not None, all=False)
        if stop:
            self._save(trainer)
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    # ---- signals ---------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = self.stop_signal or signum

    def install_signal_handlers(self) -> None:
        """Catch SIGINT and SIGTERM: the next step end saves a checkpoint and stops the run."""
        for signum in STOP_SIGNALS:
            self._previous_handlers.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take SIGTERM back from Lightning, whose handler (installed as `fit` begins) would end
        the run with exit code 0 and no checkpoint."""
        if self._previous_handlers:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._on_signal)


class RunFiles(Callback):
    """Write the run directory's description files when training starts (rank zero), so a start
    that fails earlier leaves no run directory behind; drop the stale records of an earlier
    attempt, and on resume the metrics rows of steps the checkpoint does not hold."""

    def __init__(
        self,
        run_dir: Path,
        files: dict[str, str | bytes],
        stale: list[str],
        resume_step: int | None,
    ) -> None:
        self.run_dir, self.files, self.stale, self.resume_step = run_dir, files, stale, resume_step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in self.stale:
            (self.run_dir / name).unlink(missing_ok=True)
        if self.resume_step is not None:
            truncate_metrics(self.run_dir / METRICS, self.resume_step)
        for name, data in self.files.items():
            write_atomic(self.run_dir / name, data)


class BytelmProgressBar(TQDMProgressBar):
    """A progress bar over optimizer steps that shows step, train bpb and bytes/s."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        self.train_progress_bar.total = trainer.max_steps
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description("train")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable and trainer.global_step % self.refresh_rate == 0:
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=True)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        m = trainer.callback_metrics
        shown: dict[str, Any] = {"step": trainer.global_step}
        if "train/bpb" in m:
            shown["bpb"] = f"{float(m['train/bpb']):.3f}"
        if "train/bytes_per_s" in m:
            shown["B/s"] = f"{float(m['train/bytes_per_s']):.0f}"
        if "val/bpb" in m:
            shown["val_bpb"] = f"{float(m['val/bpb']):.3f}"
        return shown


class RunClock(Callback):
    """Training wall time summed over the segments of a run, for throughput and MFU.

    A checkpoint carries the wall time up to its save, so a resumed run's total covers every
    segment that led to its weights (the minutes a killed segment spent after its last
    checkpoint are redone, and counted once).
    """

    def __init__(self) -> None:
        self.start: float | None = None
        self.before = 0.0
        self.wall_s = 0.0

    def elapsed(self) -> float:
        """Seconds of training so far, earlier segments included."""
        if self.start is None:
            return self.before
        return self.before + time.perf_counter() - self.start

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.wall_s = self.elapsed()

    def state_dict(self) -> dict[str, float]:
        return {"wall_s": self.elapsed()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("wall_s", 0.0))
