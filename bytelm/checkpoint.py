"""Load bytelm models: run dirs, safetensors release folders and `from_pretrained`.

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

import json
import sys
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bytelm.checksums import verify_checksums
from bytelm.errors import BytelmError
from bytelm.release_layout import (
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
