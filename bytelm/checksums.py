"""The checksums of a release folder: `checksums.sha256` in `sha256sum -c` format, written over
every other file and checked file by file on load (a truncated safetensors file says so)."""

from __future__ import annotations

import json
from pathlib import Path

from bytelm.errors import BytelmError
from bytelm.release_layout import CHECKSUMS_FILE, CONFIG_FILE, WEIGHTS_FILE
from bytelm.run_dir import sha256_file, write_atomic


def write_checksums(folder: Path) -> None:
    """Write `checksums.sha256` over every other file of the folder (`sha256sum -c` format)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS_FILE)
    lines = "".join(f"{sha256_file(folder / n)}  {n}\n" for n in names)
    write_atomic(folder / CHECKSUMS_FILE, lines)


def verify_checksums(folder: Path) -> None:
    """Check every file listed in `checksums.sha256`; the weights and config must be listed."""
    listing = folder / CHECKSUMS_FILE
    if not listing.is_file():
        raise BytelmError(f"{folder}: has no {CHECKSUMS_FILE}; not a complete bytelm release")
    expected: dict[str, str] = {}
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        digest, _, name = line.partition("  ")
        name = name.removeprefix("*")
        if len(digest) != 64 or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise BytelmError(f"{listing}: line {number} is not '<sha256>  <file name>'")
        expected[name] = digest.lower()
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in expected:
            raise BytelmError(f"{listing}: does not list {required}")
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise BytelmError(f"{path}: listed in {CHECKSUMS_FILE} but missing")
        if sha256_file(path) != digest:
            raise BytelmError(f"{path}: {_damage(path)}; download or release it again")


def _damage(path: Path) -> str:
    """Say whether a file that fails its checksum is truncated or changed."""
    size = path.stat().st_size
    declared = safetensors_size(path) if path.suffix == ".safetensors" else None
    if declared is not None and size < declared:
        return f"truncated ({size} of {declared} bytes)"
    return "does not match its sha256 in checksums.sha256 (the file was changed or damaged)"


def safetensors_size(path: Path) -> int | None:
    """The file size a safetensors header declares, or None if the header is unreadable."""
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len < 100_000_000:
                return None
            header = json.loads(f.read(header_len))
    except (OSError, ValueError):
        return None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + header_len + max(ends, default=0)
