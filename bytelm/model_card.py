"""The model card (README.md) of a release folder: what the model is, how it was trained and
scored, and how to load and use it. Evaluation tables come from whatever JSON files `bytelm eval`
left under `RUN/eval/`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bytelm.release_layout import (
    CHECKSUMS_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    RELEASE_FORMAT,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
)


def collect_evals(run_dir: Path) -> dict[str, Any]:
    """Every JSON file under `RUN/eval/` (as `bytelm eval all` writes them), by relative stem."""
    folder = run_dir / "eval"
    evals = {}
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            evals[str(path.relative_to(folder).with_suffix(""))] = json.loads(
                path.read_text(encoding="utf-8")
            )
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    return evals


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, scalar) pairs of a JSON value; lists of scalars are kept whole."""
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _flatten(v, f"{prefix}{k}.")]
    if isinstance(data, list) and any(isinstance(v, (dict, list)) for v in data):
        return [row for i, v in enumerate(data) for row in _flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), data)]


def _fmt(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1e9:
            return f"{value:.3e}"
        return f"{value:,.0f}" if abs(value) >= 1000 or value.is_integer() else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, separators=(", ", ": ")) + "`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    return "\n".join(lines)


_CARD_ROWS = 60  # rows per eval table; the rest stay in the run's JSON


def render_card(config: Any, meta: dict[str, Any], evals: dict[str, dict], name: str) -> str:
    """The release's README.md: what the model is, how it was trained and scored, how to use it."""
    hybrid = config.kind == "hybrid"
    what = (
        "A hierarchical byte language model (bytelm hybrid): raw UTF-8 bytes in, next-byte "
        "predictions out, with Mamba-2 (SSD) layers and sparse attention over learned chunks"
        if hybrid
        else "The bytelm tokenized baseline: a Llama-style Transformer over SentencePiece BPE "
        "tokens with byte fallback"
    )
    wall, mfu = meta.get("wall_s"), meta.get("mfu")
    timed = isinstance(wall, (int, float))
    training = [
        ("recipe", meta.get("recipe")),
        ("corpus", meta.get("corpus")),
        ("bytes seen", meta.get("bytes_seen")),
        ("optimizer steps", meta.get("steps")),
        ("seed", None if meta.get("seed") is None else str(meta["seed"])),
        ("final validation bits per byte", meta.get("final_val_bpb")),
    ]
    hardware = [
        ("hardware", meta.get("hardware")),
        ("wall-clock", f"{wall / 60:.1f} min ({wall:,.0f} s)" if timed else None),
        ("model FLOPs utilisation", f"{mfu:.1%}" if isinstance(mfu, (int, float)) else None),
    ]
    size = [
        ("parameters", meta.get("params")),
        ("parameters without the input embedding", meta.get("params_non_embedding")),
        ("training FLOPs per byte (forward + backward, analytic)", meta.get("flops_per_byte")),
        ("training FLOPs per byte (measured compression)", meta.get("flops_per_byte_actual")),
    ]
    parts = [
        f"---\nlibrary_name: bytelm\nlicense: apache-2.0\ntags:\n- bytelm\n- {config.kind}\n"
        f"- {'byte-level' if hybrid else 'bpe'}\n---\n",
        f"# {name}\n\n{what}.\n",
        "## Architecture\n\n"
        + _architecture(config)
        + "\n\n"
        + _table(sorted(config.to_dict().items()), ("setting", "value")),
        "## Size and compute\n\n" + _table(size, ("quantity", "value")),
        "## Training\n\n" + _table(training, ("training", "value")),
        "## Hardware and time\n\n" + _table(hardware, ("run", "value")),
        "## Evaluation\n\n" + _evals_section(evals),
        "## Use\n\n" + _usage(name),
        f"## Files\n\n`{CONFIG_FILE}` (format {RELEASE_FORMAT} v{FORMAT_VERSION}, the model "
        f"config and training summary), `{WEIGHTS_FILE}`"
        + (f", `{TOKENIZER_FILE}` (SentencePiece)" if not hybrid else "")
        + f", this card, and `{CHECKSUMS_FILE}` (check with `sha256sum -c {CHECKSUMS_FILE}`; "
        "`from_pretrained` checks it on every load).\n",
    ]
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


_LETTERS = (
    "Layout letters: `m` Mamba-2 (SSD) mixer, `s` sliding-window attention with sinks, `t` full "
    "causal attention; upper case adds a SwiGLU MLP after the mixer."
)


def _architecture(config: Any) -> str:
    """The layout level by level (hybrid) or the Transformer's shape (baseline), in words."""
    if config.kind == "baseline":
        return (
            f"{config.n_layers} pre-norm Transformer blocks of width {config.d_model} "
            f"({config.n_heads} query / {config.n_kv_heads} key-value heads, SwiGLU "
            f"{config.d_intermediate}, RoPE), a {config.vocab_size}-token SentencePiece BPE "
            f"vocabulary, context {config.max_seq_len} tokens "
            f"(about {config.bytes_per_token:.2f} bytes per token)."
        )
    lines, node = [], config.layout
    for level in range(len(config.d_model)):
        what = "bytes" if level == 0 else "chunks"
        head = f"- level {level} ({what}, width {config.d_model[level]}): "
        if len(node) == 1:
            lines.append(head + f"main network `{node[0]}`")
            break
        rule = config.chunking[level]
        lines.append(
            head + f"encoder `{node[0]}`, decoder `{node[2]}`; chunking `{rule}` "
            f"(about {config.compression(level):g} positions per chunk) into level {level + 1}"
        )
        node = node[1]
    return "\n".join(lines) + "\n\n" + _LETTERS


def _evals_section(evals: dict[str, Any]) -> str:
    if not evals:
        return "No evaluation results were in the run dir when this release was made."
    blocks = []
    for stem, data in evals.items():
        table, total = _eval_table(data)
        if total:
            more = total - _CARD_ROWS
            note = f"\n\n({more} more rows in the run's eval/{stem}.json)" if more > 0 else ""
            blocks.append(f"### {stem}\n\n{table}{note}")
    return "\n\n".join(blocks) or "The run's eval/ folder held no values to show."


def _eval_table(data: Any) -> tuple[str, int]:
    """A markdown table of one eval JSON and its row count before the cut.

    {task: {metric: number}} (lm-eval style) becomes one row per task and one column per
    metric, with `metric_stderr` shown as `± stderr`; anything else one row per scalar value.
    """
    if (
        isinstance(data, dict)
        and data
        and all(
            isinstance(row, dict)
            and row
            and all(not isinstance(v, (dict, list)) for v in row.values())
            for row in data.values()
        )
    ):
        columns = [c for row in data.values() for c in row if not str(c).endswith("_stderr")]
        columns = list(dict.fromkeys(columns))
        lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, row in list(data.items())[:_CARD_ROWS]:
            cells = [_cell(row.get(c), row.get(f"{c}_stderr")) for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines), len(data)
    rows = _flatten(data)
    return _table(rows[:_CARD_ROWS], ("key", "value")), len(rows)


def _cell(value: Any, stderr: Any) -> str:
    if value is None:
        return "-"
    if isinstance(stderr, (int, float)) and not isinstance(stderr, bool):
        return f"{_fmt(value)} ± {_fmt(stderr)}"
    return _fmt(value)


def _usage(name: str) -> str:
    return (
        "```python\nimport bytelm\nfrom bytelm.checkpoint import load_model\n"
        "from bytelm.generation import Decoder, Sampling, Vocabulary\n\n"
        f'model = bytelm.from_pretrained("{name}")  # device="cuda" loads it on a GPU\n'
        f'loaded = load_model("{name}")  # the model with its codec, config and training summary\n'
        "decoder = Decoder(loaded.model, Vocabulary.of_codec(loaded.codec, loaded.config.vocab_size))\n"
        'prompt = loaded.codec.encode("The meaning of life is")\n'
        "(out,) = decoder.generate([prompt], Sampling(max_bytes=200, temperature=0.8, seed=0))\n"
        'print(out.decode("utf-8", errors="replace"))\n'
        "```\n\n"
        f'```bash\nbytelm generate {name} --prompt "The meaning of life is" --max-bytes 200 '
        "--temperature 0.8 --top-k 50 --seed 0\n```"
    )
