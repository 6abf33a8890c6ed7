"""The command line of `bytelm train` before LightningCLI sees it: order, refusals, help.

- `--config` files are read first, whatever their place: a flag given before `--config` applies
  over the recipe as one given after it does (LightningCLI alone would let the later recipe win).
- The parser's complaints (an unknown or misspelt key, a value of the wrong type, an
  abbreviated flag) become one line naming the flag and what it accepts.
- `--help` lists bytelm's own keys with their meaning, read from the classes the recipe sections
  build (their docstrings), and the handful of Lightning Trainer keys the recipes use.
"""

from __future__ import annotations

import argparse
import re

# Trainer keys shown by `bytelm train --help`; any other Trainer argument is accepted too.
TRAINER_KEYS = (
    "max_steps",
    "val_check_interval",
    "log_every_n_steps",
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "precision",
    "enable_progress_bar",
    "limit_val_batches",
)


def prepare_argv(argv: list[str]) -> list[str]:
    """`argv` with every `--config FILE` moved to the front, in the order given."""
    configs: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            configs += argv[i : i + 2]
            i += 2
            continue
        if arg.startswith("--config="):
            configs.append(arg)
        else:
            rest.append(arg)
        i += 1
    return configs + rest


def _unrecognized_line(message: str) -> str | None:
    match = re.search(r"Unrecognized arguments:\s*(.*)", message, re.IGNORECASE)
    if not match:
        return None
    given = match.group(1).split()
    flag = next((g for g in given if g.startswith("-")), given[0] if given else "")
    hint = ""
    if flag.split("=")[0] in ("--optimizer", "--lr_scheduler"):
        hint = (
            "; bytelm's optimizer is AdamW with a warmup-stable-decay schedule, set with "
            "--model.optimizer.KEY and --model.schedule.KEY"
        )
    return f"unknown option {flag} (see `bytelm train --help` for the keys){hint}"


def parse_error_line(err: BaseException) -> str:
    """One line from a jsonargparse/argparse error: the flag, the value, what is allowed."""
    message = str(err).strip()
    line = _unrecognized_line(message)
    if line is not None:
        return line
    lines = [ln.strip(" -") for ln in message.splitlines() if ln.strip(" -")]
    key = re.search(r'[Kk]ey "([^"]+)"', message)
    given = re.search(r"Given value: (.*)", message)
    reasons = [
        ln for ln in lines
        if not re.match(r"(Parser key|Problem with given class|Given value|Expected a|Does not)", ln)
        and "Given value type" not in ln
    ]
    flag = f"--{key.group(1)}" if key else None
    expected = re.search(r"Expected a <class '(\w+)'>\. Got value: (.*)", message)
    if flag and expected:
        return f"{flag} {expected.group(2).strip()}: expected a value of type {expected.group(1)}"
    own = next((r for r in reasons if ":" in r and not r.startswith(("Not", "Parser"))), None)
    if flag and own:
        return f"{flag}: {own}"
    if flag and given:
        return f"{flag} {given.group(1)}: {reasons[-1] if reasons else 'invalid value'}"
    if flag:
        return f"{flag}: {lines[-1] if lines else 'invalid value'}"
    return lines[0] if lines else "invalid arguments"


def _first_sentence(text: str) -> str:
    """The first sentence of a docstring's argument text, without Sphinx markup."""
    text = re.sub(r"\s*\(type: .*", "", " ".join(text.split()))
    text = re.sub(r"``([^`]*)``", r"\1", text)
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence.rstrip(".")


def _parser_help(cls, prefix: str, only: tuple[str, ...] | None = None) -> list[str]:
    """`--prefix.key  meaning (default)` for every argument of `cls`, read by jsonargparse."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, prefix, fail_untyped=False)
    rows = []
    for action in parser._actions:
        dest = getattr(action, "dest", "")
        if not dest.startswith(prefix + ".") or action.help == argparse.SUPPRESS:
            continue
        key = dest[len(prefix) + 1 :]
        if only is not None and key not in only:
            continue
        if action.help is None or key.endswith("help"):
            continue
        if action.default is None or action.default == argparse.SUPPRESS:
            default = ""
        else:
            default = f" (default {action.default})"
        rows.append(f"  --{dest:<34} {_first_sentence(action.help)}{default}")
    return rows


def _dataclass_help(cls, prefix: str) -> list[str]:
    """`--prefix.field  meaning (default)` from a dataclass's attribute docstrings."""
    import ast
    import dataclasses
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    meaning: dict[str, str] = {}
    body = tree.body
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                meaning[node.target.id] = _first_sentence(str(after.value.value))
    return [
        f"  --{prefix + '.' + f.name:<34} {meaning.get(f.name, '')} (default {f.default})"
        for f in dataclasses.fields(cls)
    ]


def _is_section(row: str) -> bool:
    return row.split()[0] in ("--model.config", "--model.optimizer", "--model.schedule")


def help_text(front_help: str) -> str:
    """The whole `bytelm train --help` page."""
    from lightning.pytorch import Trainer

    from bytelm.training.callbacks import StepCheckpoint
    from bytelm.training.datamodule import ShardDataModule
    from bytelm.training.module import LitLM
    from bytelm.training.optim import OptimizerArgs, ScheduleArgs

    head = front_help.replace("usage: ", "usage: ", 1).rstrip()
    sections = [
        head,
        "",
        "  --config FILE                        a YAML recipe (recipes/*.yaml); flags apply over it",
        "",
        "recipe keys (any of them as a dotted flag; values are YAML, typed as in the recipe):",
        "  --seed_everything INT                seed of the model init and the data order (0..2**32-1)",
        "  --model.config.KEY VALUE             any key of the model config (see recipes/*.yaml)",
        *_dataclass_help(OptimizerArgs, "model.optimizer"),
        *_dataclass_help(ScheduleArgs, "model.schedule"),
        *[row for row in _parser_help(LitLM, "model") if not _is_section(row)],
        *_parser_help(ShardDataModule, "data"),
        *_parser_help(StepCheckpoint, "checkpoint"),
        *_parser_help(Trainer, "trainer", TRAINER_KEYS),
        "  --trainer.KEY VALUE                  any other argument of Lightning's Trainer",
    ]
    return "\n".join(sections) + "\n"
