"""A run directory's file names, atomic writes, and the checks that make a checkpoint trustworthy.

Every writer and reader of a run directory takes the names from here, and every file a command
writes goes through `atomic_output`: a temporary name in the same folder, then one rename, so a
process killed at any instant leaves either the old file or the whole new one.

A step checkpoint `checkpoints/step-NNNNNNN.ckpt` is sealed at save time by a file beside it,
`step-NNNNNNN.ckpt.sha256.json`, holding its size and sha256. A checkpoint is *intact* when its
size and checksum match its seal (one saved before seals existed is checked by reading every
member of its zip archive instead). Resuming, releasing and generating use the newest intact step
checkpoint; `last.ckpt` is a symbolic link to it, for people and tools that look for that name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONFIG_YAML = "config.yaml"
MODEL_CONFIG = "model_config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
TOKENIZER = "tokenizer.model"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
STEP_CHECKPOINT = "step-{step:07d}.ckpt"
SEAL_SUFFIX = ".sha256.json"
_STEP_RE = re.compile(r"^step-(\d+)\.ckpt$")
_HASH_CHUNK = 1 << 22


# ---- atomic writes -------------------------------------------------------------------------


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    On failure the temporary file is removed and `path` is left as it was. The file gets the
    permissions of an ordinary new file (umask applied), whatever wrote it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to `path` atomically."""
    with atomic_output(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def write_json_atomic(path: Path, payload: Any, **dump_kwargs: Any) -> None:
    """Write `payload` as indented JSON atomically."""
    write_atomic(path, json.dumps(payload, indent=2, **dump_kwargs) + "\n")


# ---- checkpoints ---------------------------------------------------------------------------


def step_of(path: Path) -> int | None:
    """The step of a `step-NNNNNNN.ckpt` file name (None for any other name)."""
    match = _STEP_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def step_checkpoints(folder: Path) -> list[Path]:
    """The step checkpoints of `folder`, oldest step first."""
    if not Path(folder).is_dir():
        return []
    found = [p for p in Path(folder).iterdir() if step_of(p) is not None]
    return sorted(found, key=lambda p: step_of(p))


def seal_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + SEAL_SUFFIX)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_seal(data_file: Path, named: Path) -> None:
    """Record the size and sha256 of `data_file` as the seal of the checkpoint `named`."""
    seal = {"file": Path(named).name, "bytes": data_file.stat().st_size,
            "sha256": sha256_file(data_file)}
    write_json_atomic(seal_path(named), seal)


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be trusted, or None when it is intact."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    seal_file = seal_path(path)
    if not seal_file.is_file():
        return _zip_problem(path)
    try:
        seal = json.loads(seal_file.read_text())
        want_bytes, want_sha = int(seal["bytes"]), str(seal["sha256"])
    except (ValueError, KeyError, TypeError):
        return f"its checksum file {seal_file.name} is unreadable"
    if size != want_bytes:
        return f"{size:,} bytes where {want_bytes:,} were written"
    if sha256_file(path) != want_sha:
        return "its sha256 differs from the one written at save time"
    return None


def _zip_problem(path: Path) -> str | None:
    """A checkpoint without a seal: every member of its zip archive must read back whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"not a readable checkpoint ({err})"
    return None if bad is None else f"member {bad} is damaged"


def newest_intact_checkpoint(
    folder: Path, say: Callable[[str], None] | None = None
) -> Path | None:
    """The newest intact step checkpoint of `folder`; each damaged newer one is reported by `say`.

    None when `folder` holds no step checkpoint at all; a folder whose checkpoints are all
    damaged raises `BytelmError`.
    """
    from bytelm.errors import BytelmError

    found = step_checkpoints(folder)
    skipped: list[str] = []
    for path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped and say is not None:
                say(f"{'; '.join(skipped)}; using {path.name} (step {step_of(path)})")
            return path
        skipped.append(f"checkpoint {path.name} is damaged ({problem})")
    if found:
        raise BytelmError(f"{folder}: no intact checkpoint ({'; '.join(skipped)})")
    return None


def point_last(folder: Path, target: Path) -> None:
    """Make `folder/last.ckpt` a relative symbolic link to `target`, replaced atomically."""
    link = Path(folder) / LAST_CHECKPOINT
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(Path(target).name, tmp)
    os.replace(tmp, link)


def remove_checkpoint(path: Path) -> None:
    """Delete a step checkpoint and its seal."""
    Path(path).unlink(missing_ok=True)
    seal_path(path).unlink(missing_ok=True)


# ---- the run as a whole --------------------------------------------------------------------


def read_summary(run_dir: Path) -> dict | None:
    """The run's summary.json, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


def run_finished(run_dir: Path) -> bool:
    """True when the run wrote its summary at the end of training, not at an interruption."""
    summary = read_summary(run_dir)
    return isinstance(summary, dict) and not summary.get("interrupted")
