"""`bytelm train --config recipes/NAME.yaml --run-dir DIR [--resume auto] [--key value ...]`.

LightningCLI reads the recipe and the dotted overrides (`--trainer.max_steps 100`,
`--data.batch_size 8`, `--model.optimizer.lr 1e-3`, `--model.config.vocab_size 2048`); this file
adds the run directory and resumption around it. Overrides apply over the recipe wherever they
stand on the command line, values are read as YAML (typed as they would be in the recipe), and
every mistake found while the recipe is read is one line and a non-zero exit, before anything is
written. The run directory (names in `bytelm.run_dir`) holds:

    config.yaml          the resolved recipe (after overrides)
    model_config.json    the model configuration (`cfg.to_dict()`)
    metrics.csv          train/* every few steps, val/bpb at intervals
    checkpoints/         step-NNNNNNN.ckpt with their seals, and last.ckpt pointing at the newest
    tokenizer.model      the SentencePiece model (baseline runs only)
    summary.json         parameters, FLOPs per byte, bytes seen, wall time, final val bpb, MFU

The first four are written when training starts, so a start that fails leaves nothing behind.
`--resume auto` continues from the newest intact checkpoint of the run directory (saying so
when it passes over a damaged one; a fresh start when there is none); `--resume PATH` from a
given checkpoint. The data position, optimizer, schedule and RNG state all come back, so the
resumed run equals an uninterrupted one. SIGINT and SIGTERM save a checkpoint at the current
step, write the summary marked interrupted and exit 130 or 143.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import signal
import sys
import warnings
from pathlib import Path

import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from bytelm.errors import BytelmError
from bytelm.run_dir import (
    CHECKPOINTS,
    CONFIG_YAML,
    METRICS,
    MODEL_CONFIG,
    SUMMARY,
    TOKENIZER,
    checkpoint_problem,
    newest_intact_checkpoint,
    read_summary,
    step_checkpoints,
)
from bytelm.training.arguments import (
    help_text,
    parse_error_line,
    prepare_argv,
)
from bytelm.training.callbacks import (
    AtomicCheckpointIO,
    BytelmProgressBar,
    RunClock,
    RunFiles,
    StepCheckpoint,
)
from bytelm.training.csv_logger import CsvMetricsLogger
from bytelm.training.datamodule import ShardDataModule
from bytelm.training.entropy_setup import settle_entropy_threshold
from bytelm.training.module import LitLM
from bytelm.training.report import start_lines
from bytelm.training.summary import write_summary


def _front_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytelm train",
        add_help=False,
        allow_abbrev=False,
        description="Train a model from a YAML recipe (LightningCLI; dotted overrides).",
    )
    parser.add_argument("--run-dir", help="run directory (default: runs/<recipe name>)")
    parser.add_argument(
        "--resume", help="'auto' (newest intact checkpoint of the run dir, if any) or a path"
    )
    return parser


def _recipe_path(argv: list[str]) -> str | None:
    """The --config argument (the recipe), if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


class _BytelmCLI(LightningCLI):
    """LightningCLI with the checkpoint callback as a recipe section and the seed linked to data."""

    run_dir: Path

    def __init__(self, *args, **kwargs) -> None:
        with warnings.catch_warnings():  # `args=` is how bytelm passes its own argv on purpose
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run.*")
            super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(StepCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.dirpath": str(self.run_dir / CHECKPOINTS)})
        parser.link_arguments("seed_everything", "data.seed")

    def parse_arguments(self, parser, args) -> None:
        """Parse, turning the parser's complaint into one line, and check the seed's range."""
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as err:
            raise BytelmError(parse_error_line(err)) from None
        seed = self.config.get("seed_everything")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise BytelmError(
                f"--seed_everything {seed}: the seed must be an integer in [0, 2**32)"
            )

    def instantiate_classes(self) -> None:
        """Instantiate; a user mistake found inside the parser's type checks comes out as it
        was raised (jsonargparse wraps it in a ValueError with the whole value dumped)."""
        try:
            super().instantiate_classes()
        except ValueError as err:
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, BytelmError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            raise BytelmError(str(cause)) from None

    def instantiate_trainer(self, **kwargs):
        """The trainer with the run directory's logger, callbacks and atomic checkpoint IO."""
        trainer_cfg = self.config_init["trainer"]
        callbacks = [RunClock()]
        if trainer_cfg.get("enable_progress_bar") is not False:
            callbacks.append(BytelmProgressBar(refresh_rate=5))
        loggers: list = [CsvMetricsLogger(self.run_dir)]
        if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(str(self.run_dir), name="tensorboard", version=""))
        given = list(trainer_cfg.get("callbacks") or [])
        given += [self.config_init[key] for key in self.parser.callback_keys]
        trainer_cfg = {
            **trainer_cfg,
            "callbacks": callbacks + given,
            "logger": loggers,
            "plugins": [AtomicCheckpointIO()],
            **kwargs,
        }
        accelerator = trainer_cfg.get("accelerator")
        if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise BytelmError(
                f"--trainer.accelerator {accelerator}: this machine has no CUDA GPU "
                "(use cpu or auto)"
            )
        try:
            return self.trainer_class(**trainer_cfg)
        except (MisconfigurationException, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise BytelmError(f"--trainer settings refused by Lightning: {first}") from None


def _checkpoint_step(path: Path, flag: str) -> int:
    """The optimizer step a checkpoint was taken at; anything else is a one-line refusal."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise BytelmError(f"{flag} {path}: not an intact checkpoint ({problem})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        step = int(ckpt["global_step"])
    except Exception as err:  # torch raises several types for files it cannot read
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BytelmError(f"{flag} {path}: not a bytelm training checkpoint ({first})") from None
    if "bytelm" not in ckpt:
        raise BytelmError(f"{flag} {path}: not written by `bytelm train`")
    return step


def _resume_path(resume: str | None, run_dir: Path) -> Path | None:
    if resume is None:
        return None
    if resume == "auto":
        say = lambda line: print(f"bytelm train: {line}", file=sys.stderr)  # noqa: E731
        return newest_intact_checkpoint(run_dir / CHECKPOINTS, say)
    path = Path(resume)
    if not path.is_file():
        raise BytelmError(f"--resume {resume}: no such checkpoint (or pass --resume auto)")
    return path


def _quiet_framework_notices() -> None:
    """Drop Lightning's advertisement line, its seed and device notices and its model summary
    (bytelm prints its own start lines and FLOPs, the summary records seed and hardware), and a
    deprecation inside its pytree helper: none would tell a bytelm user anything."""
    noise = ("litlogger", "Seed set to", "GPU available:", "TPU available:", "HPU available:")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(
            lambda record: not any(n in record.getMessage() for n in noise)
        )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


TRAINER_DEFAULTS = {
    "log_every_n_steps": 5,
    "num_sanity_val_steps": 0,
    "check_val_every_n_epoch": None,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "logger": False,
}


def _build_cli(cls: type[_BytelmCLI], run_dir: Path, args: list[str]) -> _BytelmCLI:
    """The training CLI over `args` (the recipe and its overrides) for `run_dir`."""
    cls.run_dir = run_dir
    return cls(
        LitLM,
        ShardDataModule,
        args=args,
        run=False,
        save_config_callback=None,
        auto_configure_optimizers=False,
        trainer_defaults={
            **TRAINER_DEFAULTS,
            "default_root_dir": str(run_dir),
            "precision": "bf16-mixed" if torch.cuda.is_available() else "32-true",
        },
        seed_everything_default=0,
        parser_kwargs={"prog": "bytelm train", "exit_on_error": False, "allow_abbrev": False},
    )


class _ParseOnly(_BytelmCLI):
    """The training CLI's parsing and checks, without building the model, data or trainer."""

    def instantiate_classes(self) -> None:
        pass


def resolve_recipe(args: list[str], run_dir: Path) -> dict:
    """The recipe `bytelm train` would run with `args` (`--config FILE` and dotted overrides),
    parsed and checked by the same parser, as a plain mapping; nothing is built or written.
    A mistake is the same one-line `BytelmError` that `bytelm train` gives."""
    _quiet_framework_notices()
    cli = _build_cli(_ParseOnly, Path(run_dir).resolve(), prepare_argv(list(args)))
    return cli.config.as_dict()


def main(argv: list[str]) -> int:
    _quiet_framework_notices()
    front, rest = _front_parser().parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print(help_text(_front_parser().format_help()))
        return 0
    rest = prepare_argv(rest)
    recipe = _recipe_path(rest)
    run_dir = Path(front.run_dir or Path("runs") / Path(recipe or "run").stem).resolve()
    resume = _resume_path(front.resume, run_dir)
    resume_step = None if resume is None else _checkpoint_step(resume, "--resume")
    if resume is None and step_checkpoints(run_dir / CHECKPOINTS):
        raise BytelmError(
            f"{run_dir} already holds checkpoints; pass --resume auto or a new --run-dir"
        )

    cli = _build_cli(_BytelmCLI, run_dir, rest)
    module, dm, trainer = cli.model, cli.datamodule, cli.trainer
    if trainer.max_steps is None or trainer.max_steps <= 0:
        raise BytelmError(
            f"--trainer.max_steps {trainer.max_steps}: must be a positive number of optimizer "
            "steps (the learning-rate schedule is defined over them)"
        )
    checkpoints = next(c for c in trainer.callbacks if isinstance(c, StepCheckpoint))
    previous = read_summary(run_dir)
    if resume_step is not None and resume_step >= trainer.max_steps and previous is not None:
        if not previous.get("interrupted"):
            print(f"bytelm train: {run_dir} finished at step {resume_step}; nothing to do",
                  file=sys.stderr)
            return 0
    dm.model_config = module.model_config
    dm.setup("fit")
    settle_entropy_threshold(module, dm)
    fpb = module.model.flops_per_byte(dm.seq_len)
    bytes_per_step = dm.bytes_per_batch() * trainer.world_size
    files: dict[str, str | bytes] = {
        CONFIG_YAML: cli.parser.dump(cli.config, skip_none=False),
        MODEL_CONFIG: json.dumps(module.model_config.to_dict(), indent=2) + "\n",
    }
    if dm.token_bytes is not None:
        files[TOKENIZER] = (dm.folder / TOKENIZER).read_bytes()
    stale = [METRICS, SUMMARY] if resume is None else [SUMMARY]
    trainer.callbacks.append(RunFiles(run_dir, files, stale, resume_step))
    if trainer.is_global_zero:
        for line in start_lines(
            module.model, fpb, bytes_per_step * trainer.max_steps, bytes_per_step
        ):
            print(line, file=sys.stderr)

    checkpoints.install_signal_handlers()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
    except SIGTERMException:
        checkpoints.stop_signal = checkpoints.stop_signal or signal.SIGTERM
    finally:
        checkpoints.restore_signal_handlers()
    stopped = checkpoints.stop_signal
    if stopped is None and module.last_val_step != trainer.global_step:
        trainer.validate(module, datamodule=dm, verbose=False, weights_only=True)
    if trainer.is_global_zero:
        name = None if stopped is None else signal.Signals(stopped).name
        write_summary(run_dir, recipe, cli.config["seed_everything"], module, dm, trainer, fpb,
                       interrupted=name)
        if name is not None:
            print(
                f"bytelm train: stopped by {name} at step {trainer.global_step}; checkpoint "
                f"saved; continue with --resume auto",
                file=sys.stderr,
            )
    return 0 if stopped is None else 128 + int(stopped)
