"""A study's cells: every (budget, seed, arm, learning rate), each an ordinary `bytelm train`
run directory under OUT/cells/.

A cell's command line is the arm's recipe, the study's overrides, the arm's overrides, then what
the study sets: the seed, the learning rate of a sweep, and `trainer.max_steps` = the budget's
bytes over the bytes one optimizer step sees (batch x window x devices x nodes), so the
warmup-stable-decay schedule spans the budget. Validation runs `eval.val_points` times over the
run unless the arm sets `trainer.val_check_interval`. Every arm (and sweep point) is parsed by the
training command's own parser before the first cell trains, so an unknown key or a bad value is
the same one line `bytelm train` would give, before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bytelm.errors import BytelmError
from bytelm.study.spec import LR_KEY, RECIPE_DIR, Arm, Study

CELLS = "cells"
CELL_FILE = "study_cell.json"
VAL_KEY = "trainer.val_check_interval"


@dataclass(frozen=True)
class Cell:
    """One run of the study."""

    id: str
    arm: str
    seed: int
    budget: int
    """Training bytes asked for."""
    lr: float
    swept: bool
    """True when the arm sweeps learning rates (the lr is part of the cell's name)."""
    steps: int
    run_dir: Path
    args: tuple[str, ...]
    """`bytelm train` arguments (without --run-dir and --resume)."""
    recipe: dict[str, Any]
    """The resolved recipe of the arm (before the seed and steps of this cell)."""

    @property
    def series(self) -> str:
        """The arm, with its learning rate when the arm sweeps: one curve of the report."""
        return f"{self.arm}@lr={self.lr:g}" if self.swept else self.arm

    def identity(self, evaluation: dict) -> dict:
        """What decides this cell's result: a stored cell must match it to be reused."""
        args = [recipe_label(Path(a)) if i == 1 else a for i, a in enumerate(self.args)]
        return {"cell": self.id, "arm": self.arm, "seed": self.seed, "budget": self.budget,
                "lr": self.lr, "steps": self.steps, "args": args, "eval": evaluation}


def recipe_label(path: Path) -> str:
    """recipes/NAME.yaml as `recipes/NAME.yaml` wherever the clone is; other files as given."""
    try:
        return str(Path(path).resolve().relative_to(RECIPE_DIR.parent))
    except ValueError:
        return str(path)


def budget_label(size: int) -> str:
    """2000000 -> 2M, 2048000 -> 2048K, 1000000000 -> 1G: short, exact, file-name safe."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _flag(key: str, value: Any) -> list[str]:
    """`--key VALUE`, the value written as YAML flow (JSON is valid YAML), read back typed."""
    text = value if isinstance(value, str) else json.dumps(value)
    return [f"--{key}", text]


def _arm_args(study: Study, arm: Arm, lr: float | None) -> list[str]:
    args = ["--config", str(arm.recipe)]
    for key, value in {**study.overrides, **arm.overrides}.items():
        args += _flag(key, value)
    if lr is not None:
        args += _flag(LR_KEY, lr)
    return args


def _bytes_per_step(recipe: dict, arm: str) -> int:
    data, trainer = recipe.get("data") or {}, recipe.get("trainer") or {}
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1) or 1
    if isinstance(devices, str) and devices.isdigit():  # "1" from a flag is as good as 1
        devices = int(devices)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise BytelmError(
            f"arm {arm}: trainer.devices {devices!r}: a study needs a number of devices to turn "
            "budgets into steps"
        )
    return int(data["batch_size"]) * int(data["seq_len"]) * devices * int(nodes)


def _resolve(args: list[str], arm: str, out: Path) -> dict:
    from bytelm.training.cli import resolve_recipe

    try:
        return resolve_recipe(args, out / CELLS / arm)
    except BytelmError as err:
        raise BytelmError(f"arm {arm}: {err}") from None


def plan(study: Study, out: Path) -> list[Cell]:
    """Every cell of `study` under `out`: the smallest budget first, then seed, arm and lr, so
    an interrupted study has whole comparisons done first."""
    resolved: dict[tuple[str, float | None], dict] = {}
    for arm in study.arms:
        for lr in arm.lrs or (None,):
            resolved[arm.name, lr] = _resolve(_arm_args(study, arm, lr), arm.name, out)
    cells = []
    for budget in study.budgets:
        for seed in budget.seeds:
            for arm in study.arms:
                for lr in arm.lrs or (None,):
                    recipe = resolved[arm.name, lr]
                    cells.append(_cell(study, arm, lr, seed, budget.bytes, recipe, out))
    return cells


def _cell(study: Study, arm: Arm, lr: float | None, seed: int, budget: int, recipe: dict,
          out: Path) -> Cell:
    per_step = _bytes_per_step(recipe, arm.name)
    steps = budget // per_step
    if steps < 1:
        raise BytelmError(
            f"arm {arm.name}: budget {budget:,} bytes is less than one step ({per_step:,} bytes)"
        )
    args = _arm_args(study, arm, lr) + _flag("seed_everything", seed)
    args += _flag("trainer.max_steps", steps)
    if VAL_KEY not in arm.overrides and VAL_KEY not in study.overrides:
        args += _flag(VAL_KEY, max(1, steps // study.evaluation.val_points))
    lr_value = float(lr if lr is not None else recipe["model"]["optimizer"]["lr"])
    name = arm.name + (f"-lr{lr:g}" if lr is not None else "")
    cell_id = f"{name}-{budget_label(budget)}-s{seed}"
    return Cell(cell_id, arm.name, seed, budget, lr_value, lr is not None, steps,
                out / CELLS / cell_id, tuple(args), recipe)
