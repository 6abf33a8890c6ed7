"""Callbacks the study tests put into a cell's recipe by class path: one kills the whole study
process (as a power cut or an OOM killer would) when the N-th training run starts, one makes a
cell fail at its first step."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillAtRun(Callback):
    """SIGKILL this process when training starts for the `run`-th time (counted in `counter`)."""

    def __init__(self, counter: str, run: int) -> None:
        self.counter, self.run = Path(counter), run

    def on_train_start(self, trainer, *args) -> None:
        count = int(self.counter.read_text()) + 1 if self.counter.is_file() else 1
        self.counter.write_text(str(count))
        if count == self.run:
            os.kill(os.getpid(), signal.SIGKILL)


class FailAtStep(Callback):
    """Raise an ordinary error after the first optimizer step."""

    def on_train_batch_end(self, trainer, *args) -> None:
        raise RuntimeError("probe failure in the middle of training")
