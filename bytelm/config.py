"""Model configurations: typed dataclasses, validated on construction, serialisable to JSON.

`ModelConfig` (kind "hybrid") describes the hierarchical byte model with an H-Net style nested
layout; `BaselineConfig` (kind "baseline") the tokenized Transformer. `config_from_dict` picks
the class from the mapping's `kind`. A config that does not fit raises `ConfigError`, which is
both a `ValueError` and a `BytelmError`, and whose message starts with the field's name.

The nested layout and its letters are parsed by `bytelm.layout`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bytelm.errors import ConfigError
from bytelm.layout import chunking_period, parse_layout

BYTE_VOCAB = 256
BOS_ID, EOS_ID, PAD_ID = 256, 257, 258


def _as_list(name: str, value: Any, length: int, kind: type, optional: bool = False) -> list:
    """A per-level field as a list of `length` values of `kind` (a scalar is broadcast);
    `optional`: entries may be None."""
    if not isinstance(value, (list, tuple)):
        value = [value] * length
    if len(value) != length:
        raise ConfigError(f"{name}: needs {length} entries (one per level/stage), got {len(value)}")
    out = []
    for v in value:
        if optional and v is None:
            out.append(v)
            continue
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or isinstance(v, bool):
            raise ConfigError(f"{name}: entries must be {kind.__name__}, got {v!r}")
        out.append(v)
    return out


def _check_keys(cls: type, data: dict[str, Any]) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown {cls.__name__} field (known: {sorted(known)})")


class _Serialisable:
    """from_dict / to_dict / from_json / to_json shared by both config classes."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
        _check_keys(cls, data)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            path = Path(path)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        return text


@dataclass
class ModelConfig(_Serialisable):
    """The hierarchical hybrid byte model. Per-level lists run from the outside (bytes) in."""

    kind: str = "hybrid"
    # Nested H-Net layout (see the module docstring).
    layout: Any = field(default_factory=lambda: ["m2", ["M2S1"], "m2"])
    # Embedding rows: bytes 0-255 plus specials (BOS 256, EOS 257, PAD 258).
    vocab_size: int = 260
    # Width of each level; must not shrink inward (outer vectors are padded with a learned tail).
    d_model: Any = field(default_factory=lambda: [64, 96])
    # SwiGLU hidden width per level; needed (> 0) where the level has upper-case letters.
    d_intermediate: Any = field(default_factory=lambda: [0, 256])
    # Attention query heads and key/value heads per level (head dim = d_model / n_heads).
    n_heads: Any = field(default_factory=lambda: [2, 2])
    n_kv_heads: Any = field(default_factory=lambda: [2, 2])
    # Sliding-window size and always-visible sink positions of `s/S` layers, per level.
    window: Any = field(default_factory=lambda: [64, 64])
    sinks: Any = field(default_factory=lambda: [2, 2])
    # Chunking rule per stage boundary: "dynamic", "space", "entropy" (both level 0 only) or
    # "fixed:P".
    chunking: Any = field(default_factory=lambda: ["dynamic"])
    # Target bytes (or inner positions) per chunk N per stage boundary: the ratio-loss target
    # for "dynamic", the assumed compression for FLOPs under "space", the calibration target
    # under "entropy" (null there with a fixed `entropy_threshold`); "fixed:P" uses P.
    # Default: 3.0 per stage (null at an entropy stage).
    target_compression: Any = None
    # Weight of each stage's ratio loss.
    ratio_loss_weight: float = 0.03
    # Integral gain of the ratio loss (bytelm.layers.chunking.RatioLoss): after each training
    # pass the multiplier on the boundary probability grows by gain x (N F - 1), so the mean
    # compression lands on the target; 0 is H-Net's loss alone. Training only.
    ratio_integral_gain: float = 0.1
    # Learning-rate multiplier of each level's parameters (embedding and head belong to level 0).
    lr_multiplier: Any = None
    # Mamba-2 mixer settings (shared by all levels).
    ssm_d_state: int = 64
    ssm_headdim: int = 32
    ssm_expand: int = 2
    ssm_ngroups: int = 1
    ssm_d_conv: int = 4
    ssm_chunk_size: int = 64
    # Heads and value expansion (value width = rec_expand * d_model) of the RetNet (r/R) and
    # linear-attention (l/L) mixers, per level.
    rec_heads: Any = 2
    rec_expand: Any = 2
    # S4D-Real (c/C) state size N per channel and channels per head (sharing one step dt), per level.
    s4d_d_state: Any = 16
    s4d_headdim: Any = 16
    # Mega (e/E) EMA dimensions per channel, channels per EMA head (sharing one decay per EMA
    # dimension) and attention window, per level.
    mega_ema_dim: Any = 8
    mega_headdim: Any = 16
    mega_window: Any = 64
    # Heads of the GLA (g/G) mixer per level (key width d_model / 2, value width d_model).
    gla_heads: Any = 2
    # Heads and value expansion (value width = gdn_expand_v * d_model; key width d_model) of
    # the Gated DeltaNet (d/D) mixer per level; its short conv is ssm_d_conv wide.
    gdn_heads: Any = 2
    gdn_expand_v: Any = 2
    # Heads of the RWKV-7 (w/W) time mixing per level (key and value width d_model).
    rwkv_heads: Any = 2
    # The "entropy" rule (BLT; bytelm.config_entropy): the frozen byte LM that scores each next
    # byte (a run dir or release folder), "global" (H_t > theta) or "relative"
    # (H_t - H_{t-1} > theta), theta in nats (null: calibrated toward target_compression), and
    # the calibration training records (threshold, target, bytes, compression on train bytes).
    entropy_model: str | None = None
    entropy_mode: str = "global"
    entropy_threshold: float | None = None
    entropy_calibration: dict | None = None
    # RoPE base of the attention layers and the RMSNorm epsilon.
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.kind != "hybrid":
            raise ConfigError(f"kind: ModelConfig needs kind 'hybrid', got {self.kind!r}")
        self.layout = _plain(self.layout)
        levels = parse_layout(self.layout)
        n = len(levels)
        stages = n - 1
        if not isinstance(self.vocab_size, int) or self.vocab_size < BYTE_VOCAB:
            raise ConfigError(f"vocab_size: must be an int >= {BYTE_VOCAB}, got {self.vocab_size!r}")
        self.d_model = _as_list("d_model", self.d_model, n, int)
        self.d_intermediate = _as_list("d_intermediate", self.d_intermediate, n, int)
        self.n_heads = _as_list("n_heads", self.n_heads, n, int)
        self.n_kv_heads = _as_list("n_kv_heads", self.n_kv_heads, n, int)
        self.window = _as_list("window", self.window, n, int)
        self.sinks = _as_list("sinks", self.sinks, n, int)
        self.chunking = _as_list("chunking", self.chunking, stages, str)
        if self.target_compression is None:
            self.target_compression = [None if r == "entropy" else 3.0 for r in self.chunking]
        self.target_compression = _as_list(
            "target_compression", self.target_compression, stages, float, optional=True
        )
        for name in _FAMILY_FIELDS:
            setattr(self, name, _as_list(name, getattr(self, name), n, int))
        if self.lr_multiplier is None:
            self.lr_multiplier = [1.0] * n
        self.lr_multiplier = _as_list("lr_multiplier", self.lr_multiplier, n, float)
        _require_positive_ints(
            self, "ssm_d_state", "ssm_headdim", "ssm_expand", "ssm_ngroups", "ssm_d_conv",
            "ssm_chunk_size",
        )
        if self.ssm_d_conv < 2:
            raise ConfigError(f"ssm_d_conv: must be at least 2, got {self.ssm_d_conv}")
        for name in ("ratio_loss_weight", "ratio_integral_gain", "rope_base", "norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}: must be a non-negative number, got {value!r}")
            setattr(self, name, float(value))
        for i, level in enumerate(levels):
            self._check_level(i, level)
        for i, rule in enumerate(self.chunking):
            self._check_chunking(i, rule)
        from bytelm.config_entropy import check_entropy_settings

        check_entropy_settings(self)

    def _check_level(self, i: int, level: dict[str, list[str]]) -> None:
        letters = "".join(sum(level.values(), []))
        d = self.d_model[i]
        if d < 1:
            raise ConfigError(f"d_model: level {i} must be positive, got {d}")
        if i > 0 and d < self.d_model[i - 1]:
            raise ConfigError(
                f"d_model: level {i} ({d}) is narrower than level {i - 1} ({self.d_model[i - 1]});"
                " widths must not shrink inward"
            )
        if any(c.isupper() for c in letters) and self.d_intermediate[i] < 1:
            raise ConfigError(f"d_intermediate: level {i} has MLP layers (upper case) but is 0")
        if self.lr_multiplier[i] <= 0:
            raise ConfigError(f"lr_multiplier: level {i} must be positive")
        if set(letters) & set("mM"):
            d_inner = self.ssm_expand * d
            if d_inner % self.ssm_headdim:
                raise ConfigError(
                    f"ssm_headdim: {self.ssm_headdim} does not divide ssm_expand * d_model = "
                    f"{d_inner} at level {i}"
                )
            if (d_inner // self.ssm_headdim) % self.ssm_ngroups:
                raise ConfigError(
                    f"ssm_ngroups: {self.ssm_ngroups} does not divide the "
                    f"{d_inner // self.ssm_headdim} SSM heads at level {i}"
                )
        if set(letters) & set("sStT"):
            h, hkv = self.n_heads[i], self.n_kv_heads[i]
            if h < 1 or d % h:
                raise ConfigError(f"n_heads: {h} does not divide d_model {d} at level {i}")
            if (d // h) % 2:
                raise ConfigError(f"n_heads: head dim {d // h} at level {i} must be even for RoPE")
            if hkv < 1 or h % hkv:
                raise ConfigError(f"n_kv_heads: {hkv} does not divide n_heads {h} at level {i}")
        if set(letters) & set("sS"):
            if self.window[i] < 1:
                raise ConfigError(f"window: level {i} must be at least 1, got {self.window[i]}")
            if self.sinks[i] < 0:
                raise ConfigError(f"sinks: level {i} must be non-negative, got {self.sinks[i]}")
        self._check_families(i, set(letters.lower()))
        self._check_gated_families(i, set(letters.lower()))

    def _check_families(self, i: int, kinds: set[str]) -> None:
        """Per-level settings of the recurrent families used at level i."""
        d = self.d_model[i]
        used = {"r": ("rec_heads", "rec_expand"), "l": ("rec_heads", "rec_expand"),
                "c": ("s4d_d_state", "s4d_headdim"),
                "e": ("mega_ema_dim", "mega_headdim", "mega_window")}
        for kind in sorted(kinds & set(used)):
            for name in used[kind]:
                if getattr(self, name)[i] < 1:
                    raise ConfigError(f"{name}: level {i} must be positive, got {getattr(self, name)[i]}")
        if kinds & set("rl"):
            h, e = self.rec_heads[i], self.rec_expand[i]
            if d % h or (e * d) % h:
                raise ConfigError(
                    f"rec_heads: {h} does not divide d_model {d} and rec_expand * d_model {e * d} "
                    f"at level {i}"
                )
            if "r" in kinds and (d // h) % 2:
                raise ConfigError(f"rec_heads: retnet key head dim {d // h} at level {i} must be even for RoPE")
        if "c" in kinds and d % self.s4d_headdim[i]:
            raise ConfigError(f"s4d_headdim: {self.s4d_headdim[i]} does not divide d_model {d} at level {i}")
        if "e" in kinds:
            if d % self.mega_headdim[i]:
                raise ConfigError(f"mega_headdim: {self.mega_headdim[i]} does not divide d_model {d} at level {i}")
            if d % 2:
                raise ConfigError(f"d_model: mega's attention head dim {d} at level {i} must be even for RoPE")

    def _check_gated_families(self, i: int, kinds: set[str]) -> None:
        """Per-level settings of GLA (g), Gated DeltaNet (d) and RWKV-7 (w) at level i."""
        d = self.d_model[i]
        used = {"g": ("gla_heads",), "d": ("gdn_heads", "gdn_expand_v"), "w": ("rwkv_heads",)}
        for kind in sorted(kinds & set(used)):
            for name in used[kind]:
                if getattr(self, name)[i] < 1:
                    raise ConfigError(f"{name}: level {i} must be positive, got {getattr(self, name)[i]}")
        if "g" in kinds and (d % 2 or (d // 2) % self.gla_heads[i]):
            raise ConfigError(
                f"gla_heads: {self.gla_heads[i]} does not divide the key width d_model / 2 = {d / 2:g} "
                f"at level {i}"
            )
        if "d" in kinds and d % self.gdn_heads[i]:
            raise ConfigError(f"gdn_heads: {self.gdn_heads[i]} does not divide d_model {d} at level {i}")
        if "w" in kinds and d % self.rwkv_heads[i]:
            raise ConfigError(f"rwkv_heads: {self.rwkv_heads[i]} does not divide d_model {d} at level {i}")

    def _check_chunking(self, i: int, rule: str) -> None:
        period = chunking_period(rule)
        if rule not in ("dynamic", "space", "entropy") and period is None:
            raise ConfigError(
                f"chunking: stage {i} rule {rule!r} is not 'dynamic', 'space', 'entropy' or 'fixed:P'"
            )
        if rule in ("space", "entropy") and i > 0:
            raise ConfigError(f"chunking: {rule!r} needs bytes, so only stage 0 may use it (stage {i})")
        if self.target_compression[i] is None and rule != "entropy":
            raise ConfigError(f"target_compression: stage {i} ({rule}) needs a number, got null")
        if period is not None and period < 1:
            raise ConfigError(f"chunking: stage {i} period must be at least 1, got {rule!r}")
        if rule == "dynamic" and self.target_compression[i] <= 1.0:
            raise ConfigError(
                f"target_compression: stage {i} must be > 1 for dynamic chunking, "
                f"got {self.target_compression[i]}"
            )

    @property
    def levels(self) -> list[dict[str, list[str]]]:
        """The parsed layout, one dict per level."""
        return parse_layout(self.layout)

    @property
    def n_stages(self) -> int:
        """Number of chunking boundaries (levels - 1)."""
        return len(self.d_model) - 1

    def compression(self, stage: int) -> float:
        """Expected bytes (or positions) per chunk at a stage boundary: P for fixed, N for the
        others; an entropy stage with a fixed threshold: what calibration measured."""
        period = chunking_period(self.chunking[stage])
        if period is not None:
            return float(period)
        if self.target_compression[stage] is None:
            from bytelm.config_entropy import measured_compression

            return measured_compression(self)
        return self.target_compression[stage]


@dataclass
class BaselineConfig(_Serialisable):
    """The tokenized Llama-style baseline (RMSNorm, RoPE, SwiGLU, causal attention)."""

    kind: str = "baseline"
    vocab_size: int = 4096
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 4
    d_intermediate: int = 704
    # Longest sequence in tokens.
    max_seq_len: int = 1024
    rope_base: float = 10000.0
    # Mean UTF-8 bytes per token of the training text (for FLOPs per byte).
    bytes_per_token: float = 4.0
    # Tokenizer path or name (informational).
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.kind != "baseline":
            raise ConfigError(f"kind: BaselineConfig needs kind 'baseline', got {self.kind!r}")
        _require_positive_ints(
            self, "vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_intermediate",
            "max_seq_len",
        )
        if self.d_model % self.n_heads:
            raise ConfigError(f"n_heads: {self.n_heads} does not divide d_model {self.d_model}")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"n_heads: head dim {self.d_model // self.n_heads} must be even")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"n_kv_heads: {self.n_kv_heads} does not divide {self.n_heads}")
        for name in ("rope_base", "bytes_per_token"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}: must be a positive number, got {value!r}")
            setattr(self, name, float(value))
        if self.tokenizer is not None and not isinstance(self.tokenizer, str):
            raise ConfigError(f"tokenizer: must be a string or null, got {self.tokenizer!r}")


_FAMILY_FIELDS = (
    "rec_heads", "rec_expand", "s4d_d_state", "s4d_headdim", "mega_ema_dim", "mega_headdim",
    "mega_window", "gla_heads", "gdn_heads", "gdn_expand_v", "rwkv_heads",
)


def _require_positive_ints(config: Any, *names: str) -> None:
    """ConfigError naming the first of `names` that is not a positive int on `config`."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}: must be a positive int, got {value!r}")


def _plain(layout: Any) -> Any:
    """Tuples to lists, so a layout compares and serialises the same however it was given."""
    if isinstance(layout, (list, tuple)):
        return [_plain(x) for x in layout]
    return layout


def config_from_dict(data: dict[str, Any]) -> ModelConfig | BaselineConfig:
    """ModelConfig or BaselineConfig according to data["kind"] (default "hybrid")."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
    kind = data.get("kind", "hybrid")
    if kind == "hybrid":
        return ModelConfig.from_dict(data)
    if kind == "baseline":
        return BaselineConfig.from_dict(data)
    raise ConfigError(f"kind: must be 'hybrid' or 'baseline', got {kind!r}")
