"""A callback the resume test loads by class path: the run stops moving at a given step.

It blocks at the start of the batch after `step`, i.e. after the checkpoint and the metrics row
of that step have been written, and says so with a file `paused` in the run directory, so a test
can SIGKILL the process there and know nothing of the step was still being written.
"""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

MARKER = "paused"


class PauseAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            (Path(trainer.default_root_dir) / MARKER).touch()
        while trainer.global_step >= self.step:
            time.sleep(1.0)
