"""Train one synth cell from scratch and evaluate it: a plain PyTorch loop, seeded.

The data of a cell depends only on the grid seed and its task, so every model of a task sees
the same training stream and is scored on the same held-out examples. The evaluation sets are
drawn first from their own generators; training rows that coincide with an evaluation row are
dropped, so the two never meet. Training is AdamW with linear warmup and linear decay to zero,
cross-entropy on the scored positions only (plus the ratio loss of a chunking byte model), and
gradient clipping at 1. The model's initial weights come from `torch.manual_seed(seed)`.

A cell's result: accuracy at each evaluation length, the number of answers scored, chance, the
parameters (with and without the embedding table), the decoding state after one evaluation row
(bytes per layer for a token model; for attention this is the KV cache at that length), the
steps and seconds of training and evaluation, and the loss curve.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bytelm.config import BaselineConfig
from bytelm.layers.state import tree_nbytes
from bytelm.models import build_model
from bytelm.synth.bytes_task import BytesMqar, row_text, tokenize
from bytelm.synth.grid import Cell, TrainSettings
from bytelm.synth.tasks import IGNORE, Batch, Mqar, accuracy, row_keys

TOKENIZER_ROWS = 2000  # generated training rows the baseline's BPE is trained on
LOG_EVERY = 25


def task_seed(seed: int, task: Any) -> int:
    """The data seed of a task: the same for every model trained on it."""
    return seed * 1_000_003 + zlib.crc32(json.dumps(task.describe(), sort_keys=True).encode())


def eval_tasks(task: Any, scales: list[int]) -> dict[int, Any]:
    """Evaluation length -> the task at that length (scale x the trained length)."""
    return {task.seq_len * s: dataclasses.replace(task, seq_len=task.seq_len * s) for s in scales}


class TrainStream:
    """Training batches from one generator, without any row of the evaluation sets."""

    def __init__(self, task: Any, seed: int, exclude: set[bytes]) -> None:
        self.task = task.for_training() if isinstance(task, Mqar) else task
        self.exclude = exclude
        self.rng = np.random.default_rng([seed, 0])

    def next(self, n: int) -> Batch:
        parts, have = [], 0
        while have < n:
            batch = self.task.sample(self.rng, n - have)
            keep = np.array([k not in self.exclude for k in row_keys(batch)])
            parts.append(batch.select(keep))
            have += int(keep.sum())
        return Batch.concat(parts)


def _lr_at(step: int, settings: TrainSettings) -> float:
    warm = min(1.0, (step + 1) / max(settings.warmup, 1))
    return settings.lr * warm * max(0.0, 1.0 - step / settings.steps)


def _bpe(cell: Cell, stream: TrainStream, work_dir: Path):
    """SentencePiece BPE trained on rows of the cell's training stream (the baseline's tokenizer)."""
    from bytelm.data.tokenizer import BpeTokenizer, train_bpe

    rows = stream.next(TOKENIZER_ROWS)
    sample = b"\n".join(row_text(rows, i) for i in range(len(rows)))
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{cell.id}.tokenizer.model"
    train_bpe(sample, cell.tokenizer_vocab, path)
    return BpeTokenizer(path)


class Encoder:
    """How a cell's model sees a batch: ids as they are, or BPE tokens for a baseline."""

    def __init__(self, tokenizer=None, pad_id: int = 0) -> None:
        self.tokenizer, self.pad_id = tokenizer, pad_id

    def __call__(self, batch: Batch) -> Batch:
        if self.tokenizer is None:
            return batch
        return tokenize(batch, self.tokenizer, batch.inputs.shape[1], self.pad_id)


def _predict(model: torch.nn.Module, batch: Batch, size: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(batch), size):
            logits = model(torch.from_numpy(batch.inputs[i : i + size])).logits  # [B, T, V]
            out.append(logits.argmax(-1).numpy())
    return np.concatenate(out)


def _state_bytes(model: torch.nn.Module, row: np.ndarray) -> tuple[int, list[int] | None]:
    """Decoding state after one row [T]: total bytes, and bytes per layer for a token model."""
    with torch.no_grad():
        if isinstance(model.config, BaselineConfig):
            state = model.allocate_state(1, max_len=len(row))
        else:
            _, state = model.prefill(torch.from_numpy(row[None]))
    per_layer = [tree_nbytes(s) for s in state] if isinstance(state, list) else None
    return tree_nbytes(state), per_layer


def fan_in_init(model: torch.nn.Module) -> None:
    """Redraw every linear weight as U(+-1/sqrt(fan_in)) and every embedding as N(0, 1).

    The model's own N(0, 0.02) suits widths near 768; at d_model 64 it starts attention's
    query-key product about 13 times smaller than this, and a two-block transformer then sits
    on MQAR's plateau (one value of the context, accuracy about 1/pairs) far past a minute.
    Biases and the mixers' other parameters keep their own initialisation.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.kaiming_uniform_(module.weight, a=5**0.5)
        elif isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, std=1.0)


def train_cell(cell: Cell, seed: int, work_dir: Path) -> dict[str, Any]:
    """Train `cell` from scratch with its settings, evaluate it, return its result (see the module
    docstring)."""
    settings = cell.train
    data_seed = task_seed(seed, cell.task)
    evals = {
        length: task.sample(np.random.default_rng([data_seed, 1, length]), settings.eval_examples)
        for length, task in eval_tasks(cell.task, cell.eval_scales).items()
    }
    stream = TrainStream(cell.task, data_seed, {k for b in evals.values() for k in row_keys(b)})
    config, encode = cell.model_config, Encoder()
    if isinstance(config, BaselineConfig):
        tokenizer = _bpe(cell, stream, work_dir)
        encode = Encoder(tokenizer, tokenizer.eos_id)
        config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size, max_seq_len=cell.task.seq_len)
    evals = {length: encode(b) for length, b in evals.items()}
    torch.manual_seed(seed)
    model = build_model(config)
    if settings.init == "fan_in":
        fan_in_init(model)
    optimizer = torch.optim.AdamW(
        model.optimizer_groups(settings.weight_decay, settings.lr), betas=(0.9, 0.98)
    )
    base_lr = [g["lr"] / settings.lr for g in optimizer.param_groups]
    curve, start = [], time.perf_counter()
    model.train()
    for step in range(settings.steps):
        batch = encode(stream.next(settings.batch_size))
        out = model(torch.from_numpy(batch.inputs))
        logits = out.logits  # [B, T, V]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(batch.targets).reshape(-1),
            ignore_index=IGNORE,
        )
        total = loss + out.aux.get("ratio_loss", 0.0)
        for group, mult in zip(optimizer.param_groups, base_lr):
            group["lr"] = _lr_at(step, settings) * mult
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % LOG_EVERY == 0 or step == settings.steps - 1:
            curve.append([step, round(loss.item(), 4)])
    train_s = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    acc, answers = {}, {}
    for length, batch in evals.items():
        acc[str(length)], answers[str(length)] = accuracy(_predict(model, batch, settings.eval_batch), batch)
    state_bytes, per_layer = _state_bytes(model, evals[cell.task.seq_len].inputs[0])
    return {
        "id": cell.id, "spec": cell.spec(), "task": cell.task.name, "model": cell.model_name,
        "d_model": cell.d_model, "pairs": getattr(cell.task, "pairs", None),
        "seq_len": cell.task.seq_len, "accuracy": acc, "answers": answers,
        "chance": cell.task.chance, "params": model.num_parameters(),
        "params_no_embedding": model.num_parameters(exclude_embeddings=True),
        "state_bytes": state_bytes, "state_bytes_per_layer": per_layer,
        "steps": settings.steps, "batch_size": settings.batch_size,
        "train_seconds": round(train_s, 2), "eval_seconds": round(time.perf_counter() - start, 2),
        "final_loss": curve[-1][1], "loss_curve": curve,
        "bytes_model": isinstance(cell.task, BytesMqar),
    }
