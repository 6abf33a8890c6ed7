"""`bytelm release`: a run dir's newest intact checkpoint as a release folder (config.json,
model.safetensors, tokenizer.model for a baseline, README.md model card, checksums.sha256),
written into a temporary folder and renamed into place, so no half-written release is left."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from bytelm.checkpoint import RUN_CONFIG_FILE, LoadedModel, load_run, unique_state
from bytelm.checksums import write_checksums
from bytelm.errors import BytelmError
from bytelm.model_card import collect_evals, render_card
from bytelm.release_layout import (
    CARD_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    RELEASE_FORMAT,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
)
from bytelm.run_dir import write_atomic


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
    write_atomic(folder / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=False) + "\n")
    weights = {k: v.detach().cpu().contiguous() for k, v in unique_state(model).items()}
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    _as_ordinary_file(folder / WEIGHTS_FILE)
    if config.kind == "baseline":
        shutil.copyfile(run_dir / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    card = render_card(config, meta, collect_evals(run_dir), name)
    write_atomic(folder / CARD_FILE, card)
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
