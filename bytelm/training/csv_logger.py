"""One `metrics.csv` per run directory, appended row by row and flushed at once.

Lightning's own CSVLogger deletes an existing metrics file and buffers rows, which a resumed or
killed run cannot afford. This logger appends, writes a row as soon as it is logged, rewrites the
file (atomically) only when a new column appears, and on resume drops the rows of steps that the
checkpoint did not keep, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from bytelm.run_dir import METRICS, atomic_output


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_atomic(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def truncate_metrics(path: Path, global_step: int) -> None:
    """Keep the rows of a checkpoint taken after `global_step` optimizer updates (resuming).

    Lightning logs the k-th update under step k - 1, so the kept rows are those with step below
    `global_step`; later rows came from updates the checkpoint does not hold.
    """
    columns, rows = _read(path)
    if columns:
        _write_atomic(path, columns, [r for r in rows if int(r["step"]) < global_step])


class CsvMetricsLogger(Logger):
    """Append every logged metrics dict as one row `step, name...` of `run_dir/metrics.csv`."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.path = Path(run_dir) / METRICS
        self._columns: list[str] | None = None

    @property
    def name(self) -> str:
        return "bytelm"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @property
    def log_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The resolved recipe is written as config.yaml by the CLI; nothing to do here."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items() if k != "epoch"}}
        if self._columns is None:
            self._columns = _read(self.path)[0] or ["step"]
        new = [k for k in row if k not in self._columns]
        if new:
            _, rows = _read(self.path)
            self._columns += new
            _write_atomic(self.path, self._columns, rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._columns).writerow(row)
