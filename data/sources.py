"""Corpora as streams of raw bytes.

A corpus is resolved once into a `Source`: a JSON-able description (what it is, which files, their
sizes and modification times, for the manifest and the cache) and a reader that yields its bytes in
order. Plain and compressed files (.gz, .bz2, .xz, .zip) are read as raw bytes, so every byte
survives, invalid UTF-8, NUL and 0xFF included. Structured sources (.jsonl/.json, .parquet, a
folder written by `datasets.Dataset.save_to_disk`, a hub id) go through Hugging Face `datasets`;
their records' text fields are encoded as UTF-8 and separated by `DOC_SEPARATOR`.

Named corpora live under the local data folder (`$BYTELM_DATA_DIR`): `gutenberg` (100,000,000
bytes of Project Gutenberg books plus a per-book manifest), `tinyshakespeare`, and `enwik8` (a local
`enwik8.zip` or `enwik8` file, else the hub's copy when online).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytelm.errors import BytelmError

DATA_DIR_ENV = "BYTELM_DATA_DIR"
DOC_SEPARATOR = b"\n\n"  # between the records of a structured source
DEFAULT_TEXT_FIELD = "text"
READ_CHUNK = 1 << 24  # 16 MiB per read: bounded memory for any file size
NAMED_CORPORA = ("gutenberg", "tinyshakespeare", "enwik8")
GUTENBERG_TEXT = "gutenberg/gutenberg_en_100M.txt.xz"
GUTENBERG_BOOKS = "gutenberg/gutenberg_en_100M.manifest.json"
ENWIK8_HUB_ID = "LTCB/enwik8"

_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}
_CORRUPT = (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)
_JSON_SUFFIXES = (".jsonl", ".json")
_HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<config>[\w.-]+))?")


@dataclass(frozen=True)
class Source:
    """A resolved corpus.

    `spec` identifies it (kind, path or hub id, text field, and a fingerprint of the input files)
    and goes into manifest.json; `read()` yields the corpus bytes in order; `books` is the
    gutenberg per-book list (path, offset, in_100M_bytes) that its author split needs.
    """

    name: str
    spec: dict[str, Any]
    read: Callable[[], Iterator[bytes]] = field(compare=False, repr=False)
    books: list[dict[str, Any]] | None = field(default=None, compare=False, repr=False)


def default_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local data folder: the argument, else $BYTELM_DATA_DIR."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        raise BytelmError(
            f"named corpora need the local data folder: set {DATA_DIR_ENV} or --data-dir"
        )
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir():
        raise BytelmError(f"data folder {path} does not exist")
    return path


def resolve_source(
    corpus: str | None = None,
    source: str | None = None,
    text_field: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Source:
    """Turn `--corpus NAME` or `--source PATH_OR_HUB_ID` into a `Source` (nothing is read yet).

    A source that does not exist locally and looks like `owner/name[:config]` (with no file
    suffix) is taken as a hub id; any other missing source is a missing path.
    """
    if (corpus is None) == (source is None):
        raise BytelmError("give exactly one of --corpus NAME or --source PATH")
    if corpus is not None:
        return _named(corpus, default_data_dir(data_dir))
    assert source is not None
    path = Path(source).expanduser()
    if path.exists():
        return _local(path.resolve(), text_field)
    if _looks_like_hub_id(source):
        return _hub(source, text_field or DEFAULT_TEXT_FIELD)
    raise BytelmError(f"source {source} does not exist")


def _looks_like_hub_id(text: str) -> bool:
    """`owner/name[:config]`, with no known file suffix and no local folder named `owner`."""
    known = (*_COMPRESSED, *_JSON_SUFFIXES, ".parquet", ".zip", ".txt")
    return (
        bool(_HUB_ID.fullmatch(text))
        and not text.lower().endswith(known)
        and not Path(text.split("/", 1)[0]).is_dir()
    )


def _named(name: str, data_dir: Path) -> Source:
    base = {"kind": "corpus", "name": name, "data_dir": str(data_dir)}
    if name == "gutenberg":
        text, books_file = data_dir / GUTENBERG_TEXT, data_dir / GUTENBERG_BOOKS
        for path in (text, books_file):
            if not path.is_file():
                raise BytelmError(f"gutenberg corpus file {path} not found (check {DATA_DIR_ENV})")
        try:
            books = json.loads(books_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BytelmError(f"{books_file}: not a valid book manifest ({err})") from None
        spec = {**base, "files": _fingerprint([text, books_file], data_dir)}
        return Source(name, spec, lambda: _read_file(text), books)
    if name == "tinyshakespeare":
        text = data_dir / "tinyshakespeare" / "input.txt"
        if not text.is_file():
            raise BytelmError(f"tinyshakespeare file {text} not found (check {DATA_DIR_ENV})")
        spec = {**base, "files": _fingerprint([text], data_dir)}
        return Source(name, spec, lambda: _read_file(text))
    if name == "enwik8":
        for candidate in ("enwik8.zip", "enwik8", "enwik8/enwik8.zip", "enwik8/enwik8"):
            path = data_dir / candidate
            if path.is_file():
                spec = {**base, "files": _fingerprint([path], data_dir)}
                return Source(name, spec, lambda path=path: _read_file(path))
        spec = {**base, "hub_id": ENWIK8_HUB_ID}
        return Source(name, spec, _read_enwik8_hub)
    raise BytelmError(f"unknown corpus {name!r}; choose one of {', '.join(NAMED_CORPORA)}")


def _local(path: Path, text_field: str | None) -> Source:
    files = _files_of(path) if path.is_dir() else [path]
    structured = _is_saved_dataset(path) or any(_structured_kind(f) for f in files)
    if text_field is not None and not structured:
        raise BytelmError(
            f"--text-field applies to jsonl, parquet and datasets sources, not {path}"
        )
    field_ = text_field or DEFAULT_TEXT_FIELD
    spec: dict[str, Any] = {"kind": "path", "path": str(path)}
    if structured:
        spec["text_field"] = field_
    if _is_saved_dataset(path):
        spec["files"] = _fingerprint(files, path)
        return Source(path.name, spec, lambda: _read_saved_dataset(path, field_))
    if not files:
        raise BytelmError(f"source folder {path} holds no files")
    spec["files"] = _fingerprint(files, path if path.is_dir() else path.parent)
    return Source(path.stem or path.name, spec, lambda: _read_files(files, field_))


def _hub(hub_id: str, text_field: str) -> Source:
    """`owner/name` or `owner/name:config` on the Hugging Face hub."""
    match = _HUB_ID.fullmatch(hub_id)
    assert match is not None
    repo, config = match["repo"], match["config"]
    spec = {"kind": "hub", "hub_id": repo, "config": config, "text_field": text_field}
    name = repo.replace("/", "_") + (f"_{config}" if config else "")
    return Source(name, spec, lambda: _read_hub(repo, config, text_field))


def _files_of(folder: Path) -> list[Path]:
    """Every non-hidden file below `folder`, in sorted relative-path order."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / n for n in names if not n.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _fingerprint(files: Iterable[Path], base: Path) -> list[dict[str, Any]]:
    """Relative path, size and mtime of each input: enough to notice a changed source on rerun."""
    out = []
    for f in files:
        st = f.stat()
        rel = f.relative_to(base).as_posix() if f.is_relative_to(base) else str(f)
        out.append({"path": rel, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _structured_kind(path: Path) -> str | None:
    """Which `datasets` builder parses this file ("json" or "parquet"); None for raw bytes."""
    name = path.name.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(_JSON_SUFFIXES):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def _read_files(files: list[Path], text_field: str) -> Iterator[bytes]:
    """Raw files are concatenated as they are; a structured file adds its records after a separator."""
    first = True
    for path in files:
        kind = _structured_kind(path)
        if kind is None:
            yield from _read_file(path)
        else:
            if not first:
                yield DOC_SEPARATOR
            yield from _join_records(_load_local_dataset(kind, path), text_field, str(path))
        first = False


def _read_file(path: Path) -> Iterator[bytes]:
    """The bytes of one plain or compressed file, in chunks; a corrupt archive is a user error."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for member in sorted(i.filename for i in archive.infolist() if not i.is_dir()):
                    with archive.open(member) as handle:
                        yield from _chunks(handle)
        else:
            opener = _COMPRESSED.get(suffix, open)
            with opener(path, "rb") as handle:
                yield from _chunks(handle)
    except PermissionError:
        raise BytelmError(f"{path}: permission denied") from None
    except _CORRUPT as err:
        kind = suffix.lstrip(".") or "file"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BytelmError(
            f"{path}: cannot read {kind} data, corrupt or truncated ({reason})"
        ) from None


def _chunks(handle: io.BufferedIOBase | Any) -> Iterator[bytes]:
    while chunk := handle.read(READ_CHUNK):
        yield chunk


def _join_records(
    records: Iterable[dict[str, Any]], text_field: str, where: str
) -> Iterator[bytes]:
    """The UTF-8 text of each record, separated by DOC_SEPARATOR; a missing field is a user error."""
    first = True
    for record in records:
        if text_field not in record:
            fields = ", ".join(sorted(record)) or "none"
            raise BytelmError(
                f"{where}: no text field {text_field!r} (fields: {fields}); use --text-field"
            )
        value = record[text_field]
        if value is None:
            continue
        if not isinstance(value, (str, bytes)):
            raise BytelmError(
                f"{where}: field {text_field!r} holds {type(value).__name__}, not text"
            )
        if not first:
            yield DOC_SEPARATOR
        yield value.encode("utf-8") if isinstance(value, str) else value
        first = False


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[Any]:
    """Import `datasets` with its progress bars and its and the hub client's logs quiet, so that
    a failure (say, retries while offline) reaches the user as one line."""
    import datasets
    import huggingface_hub.utils.logging as hub_logging

    bars = datasets.is_progress_bar_enabled()
    verbosity, hub_verbosity = datasets.utils.logging.get_verbosity(), hub_logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
    try:
        yield datasets
    finally:
        datasets.utils.logging.set_verbosity(verbosity)
        hub_logging.set_verbosity(hub_verbosity)
        if bars:
            datasets.enable_progress_bars()


def _load_local_dataset(kind: str, path: Path) -> Iterable[dict[str, Any]]:
    """A jsonl/json/parquet file through `datasets`, cached in a throwaway folder."""
    with (
        _quiet_datasets() as datasets,
        tempfile.TemporaryDirectory(prefix="bytelm-datasets-") as cache,
    ):
        try:
            table = datasets.load_dataset(
                kind, data_files=str(path), split="train", cache_dir=cache
            )
        except Exception as err:  # datasets wraps parser errors in many types
            raise BytelmError(f"{path}: cannot parse as {kind} ({_first_line(err)})") from None
        try:
            yield from table
        except UnicodeDecodeError as err:  # arrow decodes the strings only as rows are read
            raise BytelmError(
                f"{path}: its text is not UTF-8 ({err.reason} at byte {err.start} of a record)"
            ) from None


def _read_saved_dataset(path: Path, text_field: str) -> Iterator[bytes]:
    with _quiet_datasets() as datasets:
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as err:
            raise BytelmError(f"{path}: cannot load saved dataset ({_first_line(err)})") from None
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise BytelmError(
                    f"{path}: saved dataset has no 'train' split (has {', '.join(loaded)})"
                )
            loaded = loaded["train"]
        yield from _join_records(loaded, text_field, str(path))


def _read_hub(hub_id: str, config: str | None, text_field: str) -> Iterator[bytes]:
    """A hub dataset's train split, streamed so that large ones never sit in memory at once."""
    with _quiet_datasets() as datasets:
        try:
            stream = datasets.load_dataset(hub_id, config, split="train", streaming=True)
            records = iter(stream)
            first = next(records, None)
        except Exception as err:
            raise BytelmError(f"cannot load hub dataset {hub_id} ({_first_line(err)})") from None
        if first is not None:
            yield from _join_records(_prepend(first, records), text_field, hub_id)


def _read_enwik8_hub() -> Iterator[bytes]:
    """enwik8 from the hub's parquet export of its raw configuration (one record, the whole file)."""
    with _quiet_datasets() as datasets:
        try:
            table = datasets.load_dataset(
                ENWIK8_HUB_ID, "enwik8-raw", split="train", revision="refs/convert/parquet"
            )
        except Exception as err:
            raise BytelmError(
                f"enwik8: no enwik8.zip under {DATA_DIR_ENV} and the hub copy failed "
                f"({_first_line(err)})"
            ) from None
        yield from _join_records(table, "text", ENWIK8_HUB_ID)


def _prepend(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
