"""RunClock sums the wall time of every segment of a run: a resumed segment starts from the
seconds its checkpoint carried, and the checkpoint carries the seconds up to its save."""

from __future__ import annotations

import pytest

from bytelm.training import callbacks
from bytelm.training.callbacks import RunClock


class FakeTime:
    """A perf_counter the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def test_a_resumed_clock_adds_its_segment_to_the_carried_seconds(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(callbacks.time, "perf_counter", fake.perf_counter)

    first = RunClock()
    first.on_fit_start(None, None)
    fake.now += 7.0
    saved = first.state_dict()  # the checkpoint at the end of the first segment
    assert saved == {"wall_s": pytest.approx(7.0)}
    fake.now += 2.0  # seconds after the checkpoint, lost when the segment is killed

    resumed = RunClock()
    resumed.load_state_dict(saved)
    assert resumed.elapsed() == pytest.approx(7.0)  # before fit starts: the carried seconds
    resumed.on_fit_start(None, None)
    fake.now += 5.0
    resumed.on_fit_end(None, None)
    assert resumed.wall_s == pytest.approx(12.0)


def test_an_old_checkpoint_without_a_clock_starts_from_zero():
    clock = RunClock()
    clock.load_state_dict({})
    assert clock.elapsed() == 0.0
