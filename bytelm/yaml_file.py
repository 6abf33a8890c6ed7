"""Read a user's YAML file (a grid, a study), or say in one line why it cannot be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bytelm.errors import BytelmError


def find_named(path: str | Path, folder: Path) -> Path:
    """`path` itself when it is a file, else `folder/<path>.yaml` when that exists, else `path`."""
    path = Path(path)
    if not path.is_file() and not path.suffix and (folder / f"{path}.yaml").is_file():
        return folder / f"{path}.yaml"
    return path


def read_yaml(path: Path, what: str) -> Any:
    """The parsed file; a missing file or invalid YAML is a `BytelmError` naming `what`."""
    if not path.is_file():
        raise BytelmError(f"{what} {path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BytelmError(f"{what} {path}: not valid YAML ({str(err).splitlines()[0]})") from None
