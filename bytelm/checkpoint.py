"""Save and load bytelm models: run dirs, safetensors release folders and `from_pretrained`.

Two places hold a trained model:

- a **run dir**, written by training: `model_config.json`, `checkpoints/step-NNNNNNN.ckpt`
  (Lightning checkpoints whose state_dict keys start with `model.`; the newest intact one is
  read, and `checkpoints/last.ckpt` only when there is no step checkpoint), `summary.json`,
  and `tokenizer.model` for a baseline. The checkpoint is read with `torch.load(weights_only=True)`, which refuses
  anything but tensors and plain containers.
- a **release folder**, written by `bytelm release`, in the layout a model hub expects:
  `config.json` (format name and version, the model config, the training summary),
  `model.safetensors`, `tokenizer.model` (baseline only), `README.md` (the model card) and
  `checksums.sha256` (`sha256sum -c` format). Loading it reads JSON and safetensors only - no
  pickle anywhere - and checks every checksum, the format version, that the config has exactly
  the keys of its kind, and that every weight name and shape fits the model the config builds.

Tied weights (one tensor under several names) are stored once, under the first name the model's
state_dict gives them, and restored through the module that shares them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bytelm.errors import BytelmError
from bytelm.model_card import collect_evals, render_card
from bytelm.release_layout import (
    CARD_FILE,
    CHECKSUMS_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    RELEASE_FORMAT,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
)
from bytelm.run_dir import (
    CHECKPOINTS,
    LAST_CHECKPOINT,
    MODEL_CONFIG,
    SUMMARY,
    atomic_output,
    newest_intact_checkpoint,
)

RUN_CONFIG_FILE = MODEL_CONFIG
RUN_CHECKPOINT = Path(CHECKPOINTS) / LAST_CHECKPOINT
RUN_SUMMARY_FILE = SUMMARY
_STATE_PREFIX = "model."
_COMPILED_PREFIX = "_orig_mod."


@dataclass
class LoadedModel:
    """A model ready for inference with everything needed to use and describe it."""

    model: nn.Module
    codec: Any  # ByteCodec for the hybrid, BpeTokenizer for the baseline
    config: Any  # ModelConfig or BaselineConfig
    meta: dict[str, Any]  # the training summary (summary.json), as far as it is known
    path: Path


# --------------------------------------------------------------------------------------------
# loading


def load_model(
    path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load a run dir or a release folder, in eval mode, on `device` (default CPU) in `dtype`."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return load_release(path, device, dtype)
    if (path / RUN_CONFIG_FILE).is_file():
        return load_run(path, device, dtype)
    if not path.exists():
        raise BytelmError(f"{path}: no such run dir or release folder")
    raise BytelmError(
        f"{path}: neither a release folder ({CONFIG_FILE} + {WEIGHTS_FILE}) "
        f"nor a run dir ({RUN_CONFIG_FILE} + {RUN_CHECKPOINT})"
    )


def from_pretrained(
    path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> nn.Module:
    """The model of a release folder (either kind), checksums verified, in eval mode."""
    return load_release(Path(path), device, dtype).model


def load_release(
    path: Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load a release folder: checksums, format version, config keys and weight shapes checked."""
    if not path.is_dir():
        raise BytelmError(f"{path}: no such release folder")
    verify_checksums(path)
    doc = _read_json(path / CONFIG_FILE)
    _check_format(doc, path / CONFIG_FILE)
    config = parse_model_config(doc.get("model"), path / CONFIG_FILE)
    if doc.get("kind", config.kind) != config.kind:
        raise BytelmError(
            f"{path / CONFIG_FILE}: says kind {doc.get('kind')!r} but its model config is "
            f"a {config.kind} config"
        )
    model = _build(config, path / CONFIG_FILE)
    load_weights(model, read_safetensors(path / WEIGHTS_FILE), path / WEIGHTS_FILE)
    meta = dict(doc.get("training") or {})
    return LoadedModel(_ready(model, device, dtype), _codec(config, path), config, meta, path)


def load_run(
    path: Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load a run dir's newest intact checkpoint (Lightning, read with weights_only=True) and
    its summary."""
    config = parse_model_config(_read_json(path / RUN_CONFIG_FILE), path / RUN_CONFIG_FILE)
    model = _build(config, path / RUN_CONFIG_FILE)
    ckpt = run_checkpoint(path)
    load_weights(model, read_lightning_state(ckpt), ckpt)
    summary = path / RUN_SUMMARY_FILE
    meta = _read_json(summary) if summary.is_file() else {}
    return LoadedModel(_ready(model, device, dtype), _codec(config, path), config, meta, path)


def run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run dir's model is read from: its newest intact step checkpoint (a
    damaged newer one is passed over with one line on stderr), else `checkpoints/last.ckpt`."""
    say = lambda line: print(f"bytelm: {line}", file=sys.stderr)  # noqa: E731
    return newest_intact_checkpoint(run_dir / CHECKPOINTS, say) or run_dir / RUN_CHECKPOINT


def parse_model_config(data: Any, source: Path) -> Any:
    """A ModelConfig or BaselineConfig from a dict that must hold exactly the keys of its kind.

    Exact keys catch a hand-edited or truncated config, and a config of one kind labelled as
    the other, before any weight is read.
    """
    from bytelm.config import BaselineConfig, ModelConfig, config_from_dict

    if not isinstance(data, dict):
        raise BytelmError(f"{source}: the model config must be a JSON object")
    kind = data.get("kind", "hybrid")
    classes = {"hybrid": ModelConfig, "baseline": BaselineConfig}
    if kind not in classes:
        raise BytelmError(f"{source}: unknown model kind {kind!r} (expected hybrid or baseline)")
    cls = classes[kind]
    if is_dataclass(cls):
        known = {f.name for f in fields(cls) if f.init}
        missing = sorted(known - set(data) - {"kind"})
        unknown = sorted(set(data) - known - {"kind"})
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks key(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"has key(s) a {kind} config does not know: {', '.join(unknown)}")
            raise BytelmError(f"{source}: the {kind} model config {'; '.join(parts)}")
    try:
        return config_from_dict(data)
    except BytelmError as err:
        raise BytelmError(f"{source}: {err}") from err
    except (TypeError, ValueError, KeyError) as err:
        raise BytelmError(f"{source}: invalid {kind} model config: {err}") from err


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on CPU; a damaged file is a user error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise BytelmError(f"{path}: weights file not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise BytelmError(f"{path}: not a readable safetensors file ({err})") from err


def read_lightning_state(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a Lightning checkpoint, loaded without unpickling arbitrary objects."""
    if not path.is_file():
        raise BytelmError(f"{path}: checkpoint not found (is the run finished or saved?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged or unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BytelmError(f"{path}: cannot be read as a weights-only checkpoint ({first})") from err
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise BytelmError(f"{path}: has no state_dict; not a Lightning checkpoint")
    weights = {}
    for key, value in state.items():
        if key.startswith(_STATE_PREFIX) and isinstance(value, torch.Tensor):
            name = key[len(_STATE_PREFIX) :]
            weights[name.removeprefix(_COMPILED_PREFIX)] = value
    if not weights:
        raise BytelmError(f"{path}: no weights under '{_STATE_PREFIX}' in its state_dict")
    return weights


def unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict with each shared tensor once, under its first name."""
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    unique = {}
    for name, tensor in model.state_dict().items():
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tuple(tensor.stride()),
        )
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        unique[name] = tensor
    return unique


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `weights` into `model` after checking that names and shapes are exactly its own."""
    expected = unique_state(model)
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [
        f"{k} is {list(weights[k].shape)} but the config needs {list(t.shape)}"
        for k, t in expected.items()
        if k in weights and weights[k].shape != t.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape (e.g. {wrong[0]})")
        raise BytelmError(
            f"{source}: weights do not match the model config: {'; '.join(parts)} "
            "- a checkpoint from another architecture?"
        )
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(weights[name])


def _build(config: Any, source: Path) -> nn.Module:
    from bytelm.models import build_model

    try:
        return build_model(config)
    except BytelmError as err:
        raise BytelmError(f"{source}: {err}") from err


def _ready(
    model: nn.Module, device: str | torch.device | None, dtype: str | torch.dtype | None
) -> nn.Module:
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError:
            raise BytelmError(
                f"--device {device}: not a device torch knows (use cpu, cuda or cuda:N)"
            ) from None
        if device.type not in ("cpu", "cuda"):
            raise BytelmError(f"--device {device}: bytelm runs on cpu or cuda")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BytelmError(f"device {device} asked for, but no CUDA device is available")
        model = model.to(device=device)
    if dtype is not None:
        model = model.to(dtype=parse_dtype(dtype))
    return model.eval()


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from itself or a name such as 'bf16', 'bfloat16', 'fp32', 'float16'."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "fp64": torch.float64,
        "float64": torch.float64,
    }
    if dtype not in names:
        raise BytelmError(f"unknown dtype {dtype!r} (choose from {', '.join(names)})")
    return names[dtype]


def _codec(config: Any, folder: Path) -> Any:
    """The byte codec for the hybrid; the folder's SentencePiece model for the baseline."""
    from bytelm.data.tokenizer import BpeTokenizer, ByteCodec

    if config.kind == "hybrid":
        return ByteCodec()
    model_file = folder / TOKENIZER_FILE
    if not model_file.is_file():
        raise BytelmError(f"{folder}: a baseline needs its {TOKENIZER_FILE}, which is missing")
    try:
        return BpeTokenizer(model_file)
    except BytelmError:
        raise
    except Exception as err:  # sentencepiece raises RuntimeError/OSError for a bad model file
        raise BytelmError(f"{model_file}: not a readable SentencePiece model ({err})") from err


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise BytelmError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BytelmError(f"{path}: not valid JSON ({err})") from err


def _check_format(doc: Any, source: Path) -> None:
    if not isinstance(doc, dict) or doc.get("format") != RELEASE_FORMAT:
        raise BytelmError(f"{source}: not a bytelm release config (no format '{RELEASE_FORMAT}')")
    version = doc.get("format_version")
    if not isinstance(version, int):
        raise BytelmError(f"{source}: has no integer format_version")
    if version != FORMAT_VERSION:
        newer = " (upgrade bytelm)" if version > FORMAT_VERSION else ""
        raise BytelmError(
            f"{source}: release format version {version} is unknown; "
            f"this bytelm reads version {FORMAT_VERSION}{newer}"
        )


# --------------------------------------------------------------------------------------------
# checksums


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """Write `checksums.sha256` over every other file of the folder (`sha256sum -c` format)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS_FILE)
    lines = "".join(f"{sha256_file(folder / n)}  {n}\n" for n in names)
    _write_text(folder / CHECKSUMS_FILE, lines)


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


# --------------------------------------------------------------------------------------------
# release


def save_release(run_dir: str | Path, out: str | Path, force: bool = False) -> Path:
    """Write a release folder for a run dir, atomically: a temporary folder, then a rename.

    An existing `out` is replaced only with `force`; it is moved aside first and deleted only
    after the new folder is in place, so an interruption never leaves a half-written release.
    """
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / RUN_CONFIG_FILE).is_file():
        raise BytelmError(f"{run_dir}: not a run dir (no {RUN_CONFIG_FILE})")
    if out.exists():
        if not force:
            raise BytelmError(f"{out}: already exists; pass --force to replace it")
        if not out.is_dir():
            raise BytelmError(f"{out}: exists and is not a folder; not replacing it")
        if run_dir.resolve() == out.resolve() or out.resolve() in run_dir.resolve().parents:
            raise BytelmError(f"{out}: holds the run dir itself; choose another --out")
    loaded = load_run(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write_release_files(loaded, run_dir, tmp, out.name)
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def write_release_files(loaded: LoadedModel, run_dir: Path, folder: Path, name: str) -> None:
    """Write config.json, model.safetensors, tokenizer.model, README.md and checksums into
    `folder`; `name` is what the release will be called (its final folder name)."""
    from safetensors.torch import save_file

    from bytelm import __version__

    config, model = loaded.config, loaded.model
    meta = describe(loaded, run_dir)
    doc = {
        "format": RELEASE_FORMAT,
        "format_version": FORMAT_VERSION,
        "bytelm_version": __version__,
        "model_type": f"bytelm-{config.kind}",
        "kind": config.kind,
        "model": config.to_dict(),
        "tokenizer": TOKENIZER_FILE if config.kind == "baseline" else None,
        "training": meta,
    }
    _write_text(folder / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    weights = {k: v.detach().cpu().contiguous() for k, v in unique_state(model).items()}
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    _as_ordinary_file(folder / WEIGHTS_FILE)
    if config.kind == "baseline":
        shutil.copyfile(run_dir / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    card = render_card(config, meta, collect_evals(run_dir), name)
    _write_text(folder / CARD_FILE, card)
    write_checksums(folder)


def describe(loaded: LoadedModel, run_dir: Path) -> dict[str, Any]:
    """The training summary, with the kind and parameter counts filled in from the model."""
    meta = dict(loaded.meta)
    meta.setdefault("kind", loaded.config.kind)
    model = loaded.model
    meta.setdefault("params", int(model.num_parameters()))
    meta.setdefault("params_non_embedding", int(model.num_parameters(exclude_embeddings=True)))
    meta.setdefault("run_dir", run_dir.name)
    return meta


def _as_ordinary_file(path: Path) -> None:
    """Give a file the permissions of any other new file (safetensors writes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary name in the same folder."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
