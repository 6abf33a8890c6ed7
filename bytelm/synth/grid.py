"""A synth grid: a YAML file naming tasks, mixers and training settings, expanded into cells.

A cell is one (task, model) pair trained from scratch. Token tasks cross every task setting with
every layout and d_model; `bytes_mqar` crosses its settings with the named byte models. The whole
grid is validated before anything trains: an unknown layout letter (any letter the model
config's layout parser accepts is taken), a task whose pairs do not fit its length, an empty
grid, an unknown key, each is one `BytelmError` naming the place.

A layout `*N` stands for one layout per letter the layout parser accepts (upper case, N blocks),
so a grid covers every mixer of the alphabet as it stands when the grid runs. A task entry may
override the grid's `train` settings and its `models` (layouts, d_model), so a grid can be
sparse: the whole mixer x width cross where it is cheap, fewer cells at long lengths.
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytelm.config import BaselineConfig, ConfigError, ModelConfig, config_from_dict
from bytelm.errors import BytelmError
from bytelm.layout import parse_network
from bytelm.synth.bytes_task import BytesMqar
from bytelm.synth.tasks import TOKEN_TASKS
from bytelm.yaml_file import find_named, read_yaml

GRID_DIR = Path(__file__).resolve().parents[2] / "recipes" / "synth"
TRAIN_KEYS = {"steps", "batch_size", "lr", "weight_decay", "warmup", "eval_examples", "eval_batch", "init"}
INITS = ("model", "fan_in")  # see TrainSettings.init
TOP_KEYS = {"name", "seed", "train", "models", "tasks", "byte_models", "quick"}
MODEL_KEYS = {"layouts", "d_model", "mlp_ratio", "n_heads", "window", "sinks", "ssm"}
TASK_LIST_KEYS = {"pairs", "seq_len", "tokens", "key_len", "value_len"}
TASK_KEYS = {"task", "vocab_size", "eval_scales", "train_pairs", "train", "models"} | TASK_LIST_KEYS
EVERY_LETTER = "*"  # a layout "*N": one layout per letter the layout parser accepts, N blocks each


@dataclass
class TrainSettings:
    """How every cell trains: AdamW with linear warmup and linear decay to zero."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 20
    eval_examples: int = 512
    eval_batch: int = 128
    # "model": the model's own initialisation (GPT-2's N(0, 0.02), tuned for wide models);
    # "fan_in": every linear weight U(+-1/sqrt(fan_in)) and the embedding N(0, 1), PyTorch's
    # defaults, which let a d_model 64 transformer leave the MQAR plateau within a minute.
    init: str = "model"


@dataclass
class Cell:
    """One task x model, trained from scratch."""

    id: str
    task: Any  # a token task or BytesMqar
    model_name: str  # the layout string ("T2") or the byte model's name
    model_config: ModelConfig | BaselineConfig
    d_model: int
    eval_scales: list[int]
    train: TrainSettings = field(default_factory=TrainSettings)
    tokenizer_vocab: int | None = None  # BPE vocabulary of a baseline byte model

    def spec(self) -> dict[str, Any]:
        """Everything that decides this cell's result, to know whether a stored result is current."""
        return {
            "task": self.task.describe(), "model": self.model_name, "d_model": self.d_model,
            "config": self.model_config.to_dict(), "eval_scales": self.eval_scales,
            "tokenizer_vocab": self.tokenizer_vocab, "train": dataclasses.asdict(self.train),
        }


@dataclass
class Grid:
    name: str
    seed: int
    train: TrainSettings
    cells: list[Cell] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


def _fail(where: str, message: str) -> BytelmError:
    return BytelmError(f"grid {where}: {message}")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_keys(where: str, data: Any, known: set[str]) -> dict:
    if not isinstance(data, dict):
        raise _fail(where, f"expected a mapping, got {data!r}")
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (known: {sorted(known)})")
    return data


def parser_letters() -> list[str]:
    """Every mixer letter the model config's layout parser accepts (lower case, in a-z order)."""
    letters = []
    for c in string.ascii_lowercase:
        try:
            parse_network(f"{c}1", "probe")
        except ConfigError:
            continue
        letters.append(c)
    return letters


def _layouts(spec: Any, where: str) -> list[list[str]]:
    """"T2" or ["T2"] -> [["T2"]] (a layout without stages); "*2" -> [["M2"], ["S2"], ...]."""
    if isinstance(spec, list) and len(spec) == 1:
        spec = spec[0]
    if not isinstance(spec, str):
        raise _fail(where, f"a layout is one network string like 'T2' or ['T2'], got {spec!r}")
    if spec.startswith(EVERY_LETTER):
        count = spec[len(EVERY_LETTER):]
        if not count.isdigit() or int(count) < 1:
            raise _fail(where, f"{spec!r}: '*' takes a block count, like '*2'")
        return [[f"{c.upper()}{count}"] for c in parser_letters()]
    return [[spec]]


def _train(data: Any, where: str, base: TrainSettings | None = None) -> TrainSettings:
    """TrainSettings from a mapping, over `base` (the grid's settings) when given."""
    data = _check_keys(where, data or {}, TRAIN_KEYS)
    try:
        train = dataclasses.replace(base, **data) if base else TrainSettings(**data)
    except TypeError as err:
        raise _fail(where, str(err)) from None
    if train.init not in INITS:
        raise _fail(f"{where}.init", f"must be one of {list(INITS)}, got {train.init!r}")
    for key in TRAIN_KEYS - {"lr", "weight_decay", "warmup", "init"}:
        value = getattr(train, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _fail(f"{where}.{key}", f"must be a positive int, got {value!r}")
    train.lr, train.weight_decay = float(train.lr), float(train.weight_decay)
    return train


def token_config(layout: list[str], d_model: int, models: dict, vocab_size: int) -> ModelConfig:
    """The ModelConfig of a layout without stages at width `d_model` for a task vocabulary.

    ModelConfig needs at least 256 embedding rows; a task with fewer ids leaves the rest unused.
    """
    n_heads = int(models.get("n_heads", 2))
    ssm = dict(models.get("ssm", {}))
    return ModelConfig(
        layout=layout, vocab_size=max(vocab_size, 256), d_model=[d_model],
        d_intermediate=[int(models.get("mlp_ratio", 2) * d_model)], n_heads=[n_heads],
        n_kv_heads=[n_heads], window=[int(models.get("window", 16))],
        sinks=[int(models.get("sinks", 0))], chunking=[], target_compression=[],
        **{f"ssm_{k}": v for k, v in ssm.items()},
    )


def _token_tasks(entry: dict, where: str) -> list[Any]:
    """One task object per combination of the entry's list-valued settings."""
    kind = entry.get("task")
    if kind not in TOKEN_TASKS:
        raise _fail(where, f"unknown task {kind!r} (known: {sorted(TOKEN_TASKS) + ['bytes_mqar']})")
    cls = TOKEN_TASKS[kind]
    names = [k for k in ("pairs", "tokens", "seq_len") if k in cls.__dataclass_fields__]
    missing = [k for k in names if k not in entry]
    if missing:
        raise _fail(where, f"task {kind} needs {missing[0]!r}")
    extra = {"vocab_size": int(entry["vocab_size"])} if "vocab_size" in entry else {}
    if "train_pairs" in entry:
        if kind != "mqar":
            raise _fail(where, f"train_pairs is a setting of mqar, not of {kind}")
        extra["train_pairs"] = entry["train_pairs"]
    tasks = []
    for values in itertools.product(*(_as_list(entry[k]) for k in names)):
        task = cls(**dict(zip(names, (int(v) for v in values))), **extra)
        reason = task.check()
        if reason:
            raise _fail(where, reason)
        tasks.append(task)
    return tasks


def _slug(parts: list[str]) -> str:
    return "__".join(p.replace(" ", "") for p in parts)


def parse_grid(data: Any, name: str) -> Grid:
    """Validate a grid mapping and expand it into cells."""
    data = _check_keys("file", data, TOP_KEYS)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _fail("seed", f"must be an int, got {seed!r}")
    train = _train(data.get("train"), "train")
    models = _check_keys("models", data.get("models", {}) or {}, MODEL_KEYS)
    grid = Grid(name=str(data.get("name", name)), seed=seed, train=train, source=data)
    for i, entry in enumerate(_as_list(data.get("tasks") or [])):
        where = f"tasks[{i}]"
        entry = _check_keys(where, entry, TASK_KEYS)
        scales = _as_list(entry.get("eval_scales", [1]))
        if not scales or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in scales):
            raise _fail(f"{where}.eval_scales", f"must be positive ints (multiples of seq_len), got {scales!r}")
        cell_train = _train(entry.get("train"), f"{where}.train", train)
        if entry.get("task") == "bytes_mqar":
            grid.cells += _byte_cells(entry, where, data.get("byte_models"), scales, cell_train)
            continue
        tasks = _token_tasks(entry, where)
        here = {**models, **_check_keys(f"{where}.models", entry.get("models") or {}, {"layouts", "d_model"})}
        layouts = [lay for s in _as_list(here.get("layouts") or []) for lay in _layouts(s, "models.layouts")]
        widths = [int(d) for d in _as_list(here.get("d_model") or [])]
        if not layouts or not widths:
            raise _fail("models", "token tasks need at least one layout and one d_model")
        for task, layout, d in itertools.product(tasks, layouts, widths):
            try:
                cfg = token_config(layout, d, models, task.vocab_size)
            except ConfigError as err:
                raise _fail(f"models ({layout[0]}, d_model {d})", str(err)) from None
            cell_id = _slug([_task_slug(task), layout[0], f"d{d}"])
            grid.cells.append(Cell(cell_id, task, layout[0], cfg, d, scales, cell_train))
    if not grid.cells:
        raise _fail("tasks", "the grid has no cells (give at least one task and one model)")
    ids = [c.id for c in grid.cells]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise _fail("tasks", f"cell {dup} appears twice")
    return grid


def _task_slug(task: Any) -> str:
    d = task.describe()
    parts = [d["task"]] + [f"{k[0]}{d[k]}" for k in ("pairs", "tokens", "seq_len") if k in d]
    return "-".join(parts + ([d["train_pairs"]] if "train_pairs" in d else []))


def _byte_cells(
    entry: dict, where: str, byte_models: Any, scales: list[int], train: TrainSettings
) -> list[Cell]:
    if not isinstance(byte_models, dict) or not byte_models:
        raise _fail("byte_models", "bytes_mqar needs a mapping of named byte model configs")
    cells = []
    for pairs, seq_len in itertools.product(_as_list(entry.get("pairs", 4)), _as_list(entry.get("seq_len", 256))):
        task = BytesMqar(int(pairs), int(seq_len))
        reason = task.check()
        if reason:
            raise _fail(where, reason)
        for name, spec in byte_models.items():
            spec = dict(spec or {})
            vocab = spec.pop("tokenizer_vocab", None)
            try:
                cfg = config_from_dict(spec)
            except ConfigError as err:
                raise _fail(f"byte_models.{name}", str(err)) from None
            if isinstance(cfg, BaselineConfig) and not isinstance(vocab, int):
                raise _fail(f"byte_models.{name}", "a baseline needs tokenizer_vocab (its BPE size)")
            d = cfg.d_model if isinstance(cfg, BaselineConfig) else cfg.d_model[0]
            cells.append(Cell(_slug([_task_slug(task), name]), task, name, cfg, d, [1], train, vocab))
    return cells


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid YAML (a bare name is looked up in recipes/synth/)."""
    path = find_named(path, GRID_DIR)
    return parse_grid(read_yaml(path, "grid"), path.stem)
