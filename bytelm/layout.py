"""The layout alphabet: a model's nested layout parsed into one dict of letters per level.

Layout: a stage is `[encoder, inner, decoder]`, the innermost level a one-element list
`[main]`; each network is a string of letter+count pairs over `m/M` (Mamba-2 mixer), `s/S`
(sliding-window attention with sinks), `t/T` (full causal attention), `r/R` (RetNet retention),
`l/L` (linear attention), `c/C` (S4D-Real LTI SSM), `e/E` (Mega: EMA + gated attention),
`g/G` (gated linear attention), `d/D` (Gated DeltaNet) and `w/W` (RWKV-7 time mixing);
upper case adds a SwiGLU MLP after the mixer (`W`: RWKV-7's own channel mix). Levels are
numbered from the outside in: level 0 works on bytes, level i + 1 on the chunks of level i.
Per-level settings are lists with one entry per level; chunking settings have one entry per
stage boundary (levels - 1).
"""

from __future__ import annotations

import re
from typing import Any

from bytelm.errors import ConfigError

_NETWORK = re.compile(r"([mMsStTrRlLcCeEgGdDwW])(\d+)")
_FIXED = re.compile(r"fixed:(\d+)")


def parse_network(spec: Any, where: str) -> list[str]:
    """"M3S1" -> ["M", "M", "M", "S"]; raises ConfigError naming `layout` and `where`."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"layout: {where} must be a non-empty string like 'm4', got {spec!r}")
    pos, letters = 0, []
    for match in _NETWORK.finditer(spec):
        if match.start() != pos:
            break
        letters += [match.group(1)] * int(match.group(2))
        pos = match.end()
    if pos != len(spec):
        raise ConfigError(
            f"layout: {where} {spec!r} has an unknown letter or count at {spec[pos:]!r} "
            "(use m/M mamba, s/S sliding-window attention, t/T full attention, r/R retnet, "
            "l/L linear attention, c/C s4d, e/E mega, g/G gla, d/D gated deltanet, w/W rwkv-7, "
            "each with a count)"
        )
    if not letters:
        raise ConfigError(f"layout: {where} {spec!r} has no layers")
    return letters


def parse_layout(layout: Any) -> list[dict[str, list[str]]]:
    """The nested layout as one dict per level: {"encoder", "decoder"} or {"main"} (innermost)."""
    levels: list[dict[str, list[str]]] = []
    node, depth = layout, 0
    while True:
        if not isinstance(node, (list, tuple)) or len(node) not in (1, 3):
            raise ConfigError(
                f"layout: level {depth} must be [encoder, inner, decoder] or [main], got {node!r}"
            )
        if len(node) == 1:
            levels.append({"main": parse_network(node[0], f"level {depth} main")})
            return levels
        levels.append(
            {
                "encoder": parse_network(node[0], f"level {depth} encoder"),
                "decoder": parse_network(node[2], f"level {depth} decoder"),
            }
        )
        node, depth = node[1], depth + 1


def chunking_period(rule: str) -> int | None:
    """P for "fixed:P", None for the other rules."""
    match = _FIXED.fullmatch(rule)
    return int(match.group(1)) if match else None
