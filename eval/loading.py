"""Load a run directory or release folder for evaluation, and the lengths it is scored at.

Everything in bytelm.eval takes a `LoadedModel`-like object (`model`, `codec`, `config`, `meta`,
`path`) so tests can hand in small stand-in models without touching disk.
"""

from __future__ import annotations

from pathlib import Path

from bytelm.errors import BytelmError

HARNESS_BYTE_MAX_LENGTH = 32768  # byte models: state is bounded, so lm-eval never truncates recall


def load_for_eval(path: str | Path, device: str | None = None, dtype: str | None = None):
    """`bytelm.checkpoint.load_model(path)` with a clear error for a path that is no model."""
    path = Path(path)
    if not path.exists():
        raise BytelmError(f"{path}: no such run directory or release folder")
    from bytelm.checkpoint import load_model

    return load_model(path, device=device, dtype=dtype)


def is_byte_model(loaded) -> bool:
    return getattr(loaded.codec, "kind", "bytes") == "bytes"


def train_length(loaded) -> int:
    """The window (in model ids) the model was trained at; 2048 when nothing says.

    From the model config's `max_seq_len` (baseline: tokens), else the metadata's `seq_len`,
    else the run directory's resolved recipe (`config.yaml`, data.seq_len: bytes).
    """
    for source in (loaded.config, loaded.meta or {}):
        for key in ("max_seq_len", "seq_len"):
            value = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
            if isinstance(value, int) and value > 0:
                return value
    recipe = Path(str(loaded.path)) / "config.yaml"
    if recipe.is_file():
        import yaml

        data = (yaml.safe_load(recipe.read_text()) or {}).get("data") or {}
        if isinstance(data.get("seq_len"), int) and data["seq_len"] > 0:
            return data["seq_len"]
    return 2048


def train_bytes(loaded) -> int:
    """The training window in bytes (what `flops_per_byte` takes): the run directory's recipe
    (`config.yaml`, data.seq_len), else `train_length` in bytes (a baseline's tokens times its
    configured bytes per token)."""
    recipe = Path(str(loaded.path)) / "config.yaml"
    if recipe.is_file():
        import yaml

        data = (yaml.safe_load(recipe.read_text()) or {}).get("data") or {}
        if isinstance(data.get("seq_len"), int) and data["seq_len"] > 0:
            return data["seq_len"]
    if is_byte_model(loaded):
        return train_length(loaded)
    return round(train_length(loaded) * loaded.config.bytes_per_token)


def harness_max_length(loaded) -> int:
    """Longest id sequence one lm-eval request may use before its context is cut on the left.

    Byte models decode in bounded memory (SSM state + sliding window), so they take the whole
    of every recall prompt; a token baseline stops at its RoPE training length.
    """
    if is_byte_model(loaded):
        return max(HARNESS_BYTE_MAX_LENGTH, train_length(loaded))
    return train_length(loaded)


def model_name(loaded) -> str:
    meta = loaded.meta or {}
    return str(meta.get("name") or Path(str(loaded.path)).name)
