"""A callback the signal tests load by class path: the run sends itself a signal at one step,
as a scheduler or a user at the terminal would, at a step the test knows."""

from __future__ import annotations

import os

from lightning.pytorch.callbacks import Callback


class SignalAt(Callback):
    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
