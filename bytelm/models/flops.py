"""Analytic training FLOPs per byte (forward + backward = 3 x forward) for every model.

A multiply-add counts 2 FLOPs. Counted per position of each level, then scaled by the level's
positions per byte (1 / product of the outer stages' bytes per chunk):

- linear: every projection (Mamba in/out, attention qkv/out, SwiGLU, routing W_q/W_k, the
  encoder-decoder residual) and the head;
- conv: the depthwise causal conv of Mamba;
- scan: the chunked SSD algorithm with chunk length Q (`ssd_scan_flops`): the causal halves of
  the intra-chunk products C B^T (once per group) and (C B^T o L) x (per head), the chunk
  states B^T x and their read-out C h (per head), and the state passing between chunks (one
  multiply-add per state entry and chunk); the dechunk EMA is the same scan with one head,
  one group, P = D, N = 1;
- attention: QK^T and PV over the keys each query really sees (window + sinks for sliding
  windows, the causal prefix for full attention), averaged over the sequence.
The recurrent families (`family_flops`) count the same way: their projections are linear,
the `chunk_scan` of RetNet and linear attention is the SSD term with their own heads, P and N;
the chunked LTI convolution of S4D and Mega's EMA (`lti_scan_flops`) is scan; Mega's windowed
single-head attention is attention.
Elementwise work (norms, activations, softmax, gating) is left out.
The gated families (g GLA, d Gated DeltaNet, w RWKV-7 and `W`'s channel mix) are counted in
`bytelm.models.flops_gated`.
"""

from __future__ import annotations

from bytelm.config import BaselineConfig, ModelConfig
from bytelm.layers.scan_inputs import NARROW_CHUNK
from bytelm.models.flops_gated import channel_mix_flops, gated_flops

CATEGORIES = ("linear", "conv", "scan", "attention")


def mean_keys(seq_len: int, window: int | None, sinks: int = 0) -> float:
    """Average number of keys a query sees over positions 0 .. seq_len - 1."""
    if seq_len <= 0:
        return 0.0
    if window is None:
        return (seq_len + 1) / 2
    total = 0
    for t in range(seq_len):
        in_window = min(t + 1, window)
        total += in_window + min(sinks, t + 1 - in_window)
    return total / seq_len


def ssd_scan_flops(chunk: int, heads: int, groups: int, d_state: int, headdim: int) -> float:
    """Forward FLOPs per position of the chunked SSD scan with chunk length `chunk`.

    Per chunk of Q positions: C B^T over the Q (Q + 1) / 2 causal pairs per group (2 N each),
    the decayed scores times x over the same pairs per head (2 P each), the chunk state
    B^T x and the read-out C h per head (2 Q P N each), and passing the [P, N] state of every
    head on to the next chunk (2 P N).
    """
    q = chunk
    intra = (q + 1) * (groups * d_state + heads * headdim)  # 2 * Q (Q + 1) / 2 / Q per pair kind
    states = 4 * heads * headdim * d_state
    passing = 2 * heads * headdim * d_state / q
    return intra + states + passing


def _scan(heads: int, p: int, n: int, chunk: int, seq_len: int) -> float:
    """Forward FLOPs per position of one `chunk_scan` with `heads` heads of [P, N] states."""
    q = min(chunk, max(1, seq_len))
    return ssd_scan_flops(q, heads, heads, n, p)  # B and C per head: one group per head


def lti_scan_flops(chunk: int, d_model: int, d_state: int) -> float:
    """Forward FLOPs per position of `bytelm.layers.lti.lti_conv` with chunk length `chunk`.

    Per chunk of Q positions and channel: the causal half of the Toeplitz product (Q (Q + 1) / 2
    pairs), the chunk's contribution to the [N] state and the read-out of the entering state
    (2 Q N each), and passing the state on to the next chunk (2 N).
    """
    q = chunk
    return d_model * ((q + 1) + 4 * d_state + 2 * d_state / q)


def family_flops(cfg: ModelConfig, level: int, kind: str, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per position of one r (RetNet), l (linear attention), c (S4D) or e (Mega)
    mixer at `level`, sequence length `seq_len`."""
    d, chunk = cfg.d_model[level], cfg.ssm_chunk_size
    if kind in "rl":
        h, dv = cfg.rec_heads[level], cfg.rec_expand[level] * d
        gate = dv if kind == "r" else 0  # RetNet's output gate
        linear = 2 * d * (2 * d + dv + gate) + 2 * dv * d
        p = dv // h + (1 if kind == "l" else 0)  # linear attention's normaliser channel
        return {"linear": linear, "scan": _scan(h, p, d // h, chunk, seq_len)}
    if kind == "c":
        q = min(chunk, NARROW_CHUNK, max(1, seq_len))
        return {"linear": 2 * d * 2 * d, "scan": lti_scan_flops(q, d, cfg.s4d_d_state[level])}
    if kind == "e":
        h, window = cfg.mega_ema_dim[level], cfg.mega_window[level]
        q = min(chunk, NARROW_CHUNK, max(1, seq_len))
        return {
            "linear": 2 * d * d * (1 + 4 + 1),  # v, (z, r, h, phi), U_h
            "scan": lti_scan_flops(q, d, h),
            "attention": 4 * d * mean_keys(seq_len, window),
        }
    raise ValueError(f"family_flops: {kind!r} is not one of r, l, c, e")


def _network(cfg: ModelConfig, level: int, letters: list[str], seq_len: int) -> dict[str, float]:
    """Forward FLOPs per position of one network at `level`, sequence length `seq_len`."""
    d = cfg.d_model[level]
    out = dict.fromkeys(CATEGORIES, 0.0)
    for letter in letters:
        kind = letter.lower()
        if kind == "m":
            d_inner = cfg.ssm_expand * d
            heads = d_inner // cfg.ssm_headdim
            gn = cfg.ssm_ngroups * cfg.ssm_d_state
            out["linear"] += 2 * d * (2 * d_inner + 2 * gn + heads) + 2 * d_inner * d
            out["conv"] += 2 * (d_inner + 2 * gn) * cfg.ssm_d_conv
            q = min(cfg.ssm_chunk_size, max(1, seq_len))
            out["scan"] += ssd_scan_flops(q, heads, cfg.ssm_ngroups, cfg.ssm_d_state, cfg.ssm_headdim)
        elif kind in "rlce":
            for key, value in family_flops(cfg, level, kind, seq_len).items():
                out[key] += value
        elif kind in "gdw":
            for key, value in gated_flops(cfg, level, kind, seq_len).items():
                out[key] += value
        else:
            h, hkv = cfg.n_heads[level], cfg.n_kv_heads[level]
            dh = d // h
            out["linear"] += 2 * d * (h + 2 * hkv) * dh + 2 * h * dh * d
            window = cfg.window[level] if kind == "s" else None
            sinks = cfg.sinks[level] if kind == "s" else 0
            out["attention"] += 4 * h * dh * mean_keys(seq_len, window, sinks)
        if letter == "W":
            out["linear"] += channel_mix_flops(cfg, level)
        elif letter.isupper():
            out["linear"] += 6 * d * cfg.d_intermediate[level]
    return out


def hybrid_flops_breakdown(
    cfg: ModelConfig, seq_len: int, compression: list[float] | None = None
) -> dict[str, float]:
    """Forward + backward FLOPs per byte by category for a byte sequence of `seq_len`.

    compression: bytes (outer positions) per chunk at each stage; default the config's targets
    (P for fixed:P).
    """
    if compression is None:
        compression = [cfg.compression(i) for i in range(cfg.n_stages)]
    compression = [float(c) for c in compression]  # accepts the model's aux tensors too
    if len(compression) != cfg.n_stages:
        raise ValueError(f"compression: needs {cfg.n_stages} entries, got {len(compression)}")
    total = dict.fromkeys(CATEGORIES, 0.0)
    per_byte = 1.0  # positions of the current level per byte
    for level, spec in enumerate(cfg.levels):
        length = max(1, round(seq_len * per_byte))
        d = cfg.d_model[level]
        parts = [_network(cfg, level, letters, length) for letters in spec.values()]
        if "encoder" in spec:
            routing = 4 * d * d if cfg.chunking[level] == "dynamic" else 0
            parts.append({"linear": routing + 2 * d * d})  # routing + residual
            q = min(cfg.ssm_chunk_size, max(1, round(length / compression[level])))
            dechunk = ssd_scan_flops(q, heads=1, groups=1, d_state=1, headdim=d)
            parts.append({"scan": dechunk / compression[level]})  # per chunk -> per position
        for part in parts:
            for key, value in part.items():
                total[key] += 3 * value * per_byte
        if "encoder" in spec:
            per_byte /= compression[level]
    total["linear"] += 3 * 2 * cfg.d_model[0] * cfg.vocab_size  # head
    return total


def hybrid_flops_per_byte(cfg: ModelConfig, seq_len: int, compression: list[float] | None = None) -> float:
    """Forward + backward FLOPs per byte of the hybrid model."""
    return sum(hybrid_flops_breakdown(cfg, seq_len, compression).values())


def baseline_window_tokens(cfg: BaselineConfig, seq_len_bytes: int) -> int:
    """Tokens in a training window of `seq_len_bytes` bytes, as the data module cuts it."""
    return max(2, round(seq_len_bytes / cfg.bytes_per_token))


def baseline_flops_per_byte(
    cfg: BaselineConfig, seq_len_bytes: int, compression: float | None = None
) -> float:
    """Forward + backward FLOPs per byte of the tokenized baseline at windows of `seq_len_bytes`
    bytes (`baseline_window_tokens` tokens); per-token FLOPs divided by `compression` (bytes per
    token actually seen), by default `cfg.bytes_per_token`."""
    d, dh = cfg.d_model, cfg.d_model // cfg.n_heads
    tokens = baseline_window_tokens(cfg, seq_len_bytes)
    per_layer = (
        2 * d * (cfg.n_heads + 2 * cfg.n_kv_heads) * dh + 2 * cfg.n_heads * dh * d
        + 6 * d * cfg.d_intermediate + 4 * cfg.n_heads * dh * mean_keys(tokens, None)
    )
    per_token = cfg.n_layers * per_layer + 2 * d * cfg.vocab_size
    return 3 * per_token / (cfg.bytes_per_token if compression is None else compression)


def flops_per_byte(
    cfg: ModelConfig | BaselineConfig, seq_len_bytes: int, compression=None
) -> float:
    """Dispatch on the config kind; `seq_len_bytes` is in bytes for both kinds."""
    if isinstance(cfg, BaselineConfig):
        return baseline_flops_per_byte(cfg, seq_len_bytes, compression)
    return hybrid_flops_per_byte(cfg, seq_len_bytes, compression)
