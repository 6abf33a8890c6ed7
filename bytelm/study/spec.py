"""A study file: arms (a recipe plus dotted overrides, maybe a learning-rate sweep), seeds,
budgets of training bytes, and the evaluations every cell gets.

The file is read and checked whole before anything trains: an unknown key, a recipe that is not
there, an arm named twice, a `baseline` that names no arm, an override of a key the study sets
itself (the seed, the step count, the swept learning rate), each is one `BytelmError` naming the
place. Whether the overrides are keys the training command knows is checked next, by
`bytelm.study.plan`, with the training command's own parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytelm.errors import BytelmError
from bytelm.yaml_file import find_named, read_yaml

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"
STUDY_DIR = RECIPE_DIR / "studies"
TOP_KEYS = {"question", "arms", "seeds", "budgets", "baseline", "overrides", "eval"}
ARM_KEYS = {"name", "recipe", "overrides", "lrs"}
BUDGET_KEYS = {"bytes", "seeds"}
EVAL_KEYS = {"test_bytes", "heldout", "val_points"}
HELDOUT_KEYS = {"name", "source", "split", "bytes"}
# Keys the study sets in every cell; an arm may not override them.
STUDY_SET = {"seed_everything", "trainer.max_steps"}
LR_KEY = "model.optimizer.lr"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)$", re.IGNORECASE)
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Arm:
    """One model setting of the study: a recipe, its overrides and the learning rates tried."""

    name: str
    recipe: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    lrs: tuple[float, ...] = ()
    """Learning rates swept (empty: the recipe's, after the overrides)."""


@dataclass(frozen=True)
class Budget:
    """Training bytes of one budget and the seeds run at it."""

    bytes: int
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Heldout:
    """An extra held-out corpus: any `--source`-style text, split by `bytelm prepare`'s code."""

    name: str
    source: str
    split: str = "test"
    bytes: int | None = None


@dataclass(frozen=True)
class Evaluation:
    """What every finished cell is scored on."""

    test_bytes: int | None = 100_000
    """First bytes of the training corpus's test split (None: the whole split)."""
    heldout: Heldout | None = None
    val_points: int = 4
    """Validations per run, spread over its steps (unless an arm sets val_check_interval)."""


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    question: str
    arms: tuple[Arm, ...]
    budgets: tuple[Budget, ...]
    baseline: str | None
    """The arm every other arm is compared with (paired differences, crossover)."""
    overrides: dict[str, Any]
    """Dotted overrides applied to every arm before its own (the data, say)."""
    evaluation: Evaluation

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def parse_bytes(value: Any, where: str) -> int:
    """A byte count: an integer, or a string such as "2M" or "1.5G" (decimal units)."""
    if isinstance(value, bool):
        raise BytelmError(f"{where} {value!r}: expected a number of bytes such as 2000000 or 2M")
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE.match(str(value).strip())
        if not match:
            raise BytelmError(f"{where} {value!r}: expected a number of bytes such as 2000000 or 2M")
        number = int(float(match.group(1)) * _SCALE[match.group(2).upper()])
    if number < 1:
        raise BytelmError(f"{where} {value!r}: must be a positive number of bytes")
    return number


def _unknown(given: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise BytelmError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BytelmError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise BytelmError(f"{where}: expected a non-empty list of integer seeds")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise BytelmError(f"{where}: seed {seed!r} is not an integer in [0, 2**32)")
    if len(set(value)) != len(value):
        raise BytelmError(f"{where}: a seed is listed twice")
    return tuple(value)


def _recipe(value: Any, base: Path, where: str) -> Path:
    """A recipe name in recipes/ or a path (relative to the study file, then the working dir)."""
    if not isinstance(value, str) or not value:
        raise BytelmError(f"{where}: expected a recipe name such as tiny-hybrid")
    candidates = [RECIPE_DIR / f"{value}.yaml", base / value, Path(value)]
    for path in candidates:
        if path.suffix in (".yaml", ".yml") and path.is_file():
            return path.resolve()
    raise BytelmError(f"{where} {value!r}: no such recipe (not recipes/{value}.yaml nor a file)")


def _overrides(value: Any, where: str, reserved: set[str]) -> dict[str, Any]:
    overrides = _mapping(value, where)
    for key in overrides:
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$", key):
            raise BytelmError(f"{where}: {key!r} is not a dotted key such as data.batch_size")
        if key in reserved:
            raise BytelmError(f"{where}: {key} is set by the study itself (seeds, budgets, lrs)")
    return dict(overrides)


def _arm(raw: Any, index: int, base: Path, reserved: set[str]) -> Arm:
    where = f"arms[{index}]"
    raw = _mapping(raw, where)
    _unknown(raw, ARM_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BytelmError(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.'")
    where = f"arm {name}"
    lrs = raw.get("lrs") or []
    if not isinstance(lrs, list) or any(
        isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0 for lr in lrs
    ):
        raise BytelmError(f"{where}: lrs must be a list of positive learning rates")
    if len(set(lrs)) != len(lrs):
        raise BytelmError(f"{where}: a learning rate is listed twice in lrs")
    overrides = _overrides(raw.get("overrides"), f"{where}: overrides", reserved)
    if lrs and LR_KEY in overrides:
        raise BytelmError(f"{where}: give the learning rate either in lrs or as {LR_KEY}")
    recipe = _recipe(raw.get("recipe"), base, f"{where}: recipe")
    return Arm(name, recipe, overrides, tuple(float(lr) for lr in lrs))


def _budgets(raw: Any, seeds: tuple[int, ...] | None) -> tuple[Budget, ...]:
    if not isinstance(raw, list) or not raw:
        raise BytelmError("budgets: expected a non-empty list of training bytes")
    budgets = []
    for i, entry in enumerate(raw):
        where = f"budgets[{i}]"
        if isinstance(entry, dict):
            _unknown(entry, BUDGET_KEYS, where)
            size = parse_bytes(entry.get("bytes"), f"{where}: bytes")
            own = _seeds(entry["seeds"], f"{where}: seeds") if "seeds" in entry else seeds
        else:
            size, own = parse_bytes(entry, where), seeds
        if own is None:
            raise BytelmError(f"{where}: no seeds (give seeds at the top or in the budget)")
        budgets.append(Budget(size, own))
    if len({b.bytes for b in budgets}) != len(budgets):
        raise BytelmError("budgets: a budget is listed twice")
    return tuple(sorted(budgets, key=lambda b: b.bytes))


def _evaluation(raw: Any, base: Path) -> Evaluation:
    raw = _mapping(raw, "eval")
    _unknown(raw, EVAL_KEYS, "eval")
    test_bytes = raw.get("test_bytes", Evaluation.test_bytes)
    if test_bytes is not None:
        test_bytes = parse_bytes(test_bytes, "eval: test_bytes")
    points = raw.get("val_points", Evaluation.val_points)
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise BytelmError(f"eval: val_points {points!r}: must be a positive integer")
    heldout = None
    if raw.get("heldout") is not None:
        h = _mapping(raw["heldout"], "eval: heldout")
        _unknown(h, HELDOUT_KEYS, "eval: heldout")
        source = h.get("source")
        if not isinstance(source, str) or not source:
            raise BytelmError("eval: heldout: source must name a corpus, a file or a folder")
        if (base / source).exists():
            source = str((base / source).resolve())
        split = h.get("split", "test")
        if split not in ("train", "val", "test"):
            raise BytelmError(f"eval: heldout: split {split!r}: choose train, val or test")
        size = None if h.get("bytes") is None else parse_bytes(h["bytes"], "eval: heldout: bytes")
        heldout = Heldout(str(h.get("name") or Path(source).stem), source, split, size)
    return Evaluation(test_bytes, heldout, points)


def load_study(path: str | Path) -> Study:
    """Read and check a study file (a path, or a name in recipes/studies/)."""
    path = find_named(path, STUDY_DIR)
    raw = _mapping(read_yaml(path, "study"), str(path))
    _unknown(raw, TOP_KEYS, str(path))
    base = path.resolve().parent
    overrides = _overrides(raw.get("overrides"), "overrides", STUDY_SET | {LR_KEY})
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, list) or not arms_raw:
        raise BytelmError("arms: expected a non-empty list of arms")
    arms = tuple(_arm(a, i, base, STUDY_SET) for i, a in enumerate(arms_raw))
    names = [a.name for a in arms]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise BytelmError(f"arms: the name {twice!r} is used twice")
    seeds = _seeds(raw["seeds"], "seeds") if "seeds" in raw else None
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in names:
        raise BytelmError(f"baseline: {baseline!r} is not an arm (arms: {', '.join(names)})")
    question = raw.get("question") or ""
    return Study(
        name=path.stem, path=path.resolve(), question=str(question).strip(), arms=arms,
        budgets=_budgets(raw.get("budgets"), seeds), baseline=baseline, overrides=overrides,
        evaluation=_evaluation(raw.get("eval"), base),
    )
