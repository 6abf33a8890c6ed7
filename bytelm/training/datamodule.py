"""A LightningDataModule over the prepared byte or BPE token shards of one corpus.

Training batches are `TrainWindows.batch(i)` for i = 0, 1, 2, ...: a pure function of the seed,
the batch index, the rank and the world size, so resuming at batch i is the same as never having
stopped, and each rank draws its own windows. The batch index to start from is the module's
`batches_seen`, restored from the checkpoint before the loader is built.

Lengths are in bytes for both kinds of model: `seq_len` is the byte window of the byte model,
and a baseline trains on windows of `round(seq_len / bytes_per_token)` tokens, so a pair with
equal `batch_size` and `seq_len` sees the same bytes per batch. Validation scores the first
`val_bytes` bytes of the val split (all of it for 0) in contiguous windows, the first id
conditioned on BOS, so both kinds score exactly the same bytes: a baseline scores the tokens
those bytes encode to (its tokenizer round-trips any bytes). Bits per byte is the summed NLL
over the bytes the scored targets cover.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from bytelm.config import BOS_ID
from bytelm.errors import BytelmError

BYTES_PER_TOKEN_TOLERANCE = 0.05


class _TrainBatches(IterableDataset):
    """Endless `(ids [B, T+1], n_bytes [B])` batches from batch index `start` on."""

    def __init__(self, windows, start: int, token_bytes: np.ndarray | None) -> None:
        self.windows, self.start, self.token_bytes = windows, start, token_bytes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = self.start
        while True:
            ids = np.asarray(self.windows.batch(index), dtype=np.int64)  # [B, T+1]
            yield torch.from_numpy(ids), torch.from_numpy(_target_bytes(ids, self.token_bytes))
            index += 1


class _ValBatches(IterableDataset):
    """`(ids [B, L+1], score_mask [B, L], n_bytes [B])` batches of equal-length eval windows."""

    def __init__(self, windows: list, batch_size: int) -> None:
        self.windows, self.batch_size = windows, batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        group: list = []
        for w in self.windows:
            if group and (len(w.ids) != len(group[0].ids) or len(group) == self.batch_size):
                yield self._collate(group)
                group = []
            group.append(w)
        if group:
            yield self._collate(group)

    @staticmethod
    def _collate(group: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = np.stack([w.ids for w in group]).astype(np.int64)  # [B, L+1]
        positions = np.arange(ids.shape[1] - 1)[None, :]
        mask = positions >= np.array([w.score_from for w in group])[:, None]  # [B, L]
        n_bytes = np.array([w.n_bytes for w in group], dtype=np.int64)  # [B]
        return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(n_bytes)


def _target_bytes(ids: np.ndarray, token_bytes: np.ndarray | None) -> np.ndarray:
    """UTF-8 bytes covered by the targets `ids[:, 1:]` of each row `[B]`."""
    targets = ids[:, 1:]
    if token_bytes is None:
        return np.full(len(ids), targets.shape[1], dtype=np.int64)
    return token_bytes[targets].sum(1)


class ShardDataModule(L.LightningDataModule):
    """Byte or token windows from a prepared corpus folder (prepared on first use)."""

    def __init__(
        self,
        corpus: str | None = "gutenberg",
        path: str | None = None,
        batch_size: int = 16,
        seq_len: int = 512,
        val_bytes: int = 131072,
        val_context: int = 0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            corpus: corpus name or source, prepared with `bytelm prepare` on first use.
            path: an already prepared folder (overrides `corpus`).
            batch_size: windows per batch and per rank.
            seq_len: window length in bytes (a baseline converts it to tokens).
            val_bytes: bytes of the val split scored at each validation (0: the whole split).
            val_context: left context of each validation window after the first.
            seed: seed of the training window order.
        """
        super().__init__()
        if corpus is None and path is None:
            raise BytelmError("data: set data.corpus or data.path")
        if batch_size < 1 or seq_len < 2:
            raise BytelmError("data: batch_size >= 1 and seq_len >= 2 required")
        self.corpus, self.path = corpus, path
        self.batch_size, self.seq_len = batch_size, seq_len
        self.val_bytes, self.val_context, self.seed = val_bytes, val_context, seed
        self.folder: Path | None = None
        self.tokenizer = None  # the baseline's BpeTokenizer, set up with the data
        self.token_bytes: np.ndarray | None = None
        self.model_seq_len = seq_len
        self.model_config = None

    # ---- what the model needs --------------------------------------------------------------

    def _model_config(self):
        """The model's config: set by the caller, else taken from the attached module."""
        return self.model_config or self.trainer.lightning_module.model_config

    def _tokenized(self) -> bool:
        return getattr(self._model_config(), "kind", "hybrid") == "baseline"

    def _locate(self) -> Path:
        if self.path is not None:
            folder = Path(self.path)
            if not (folder / "manifest.json").is_file():
                raise BytelmError(f"data.path {folder} is not a prepared folder (no manifest.json)")
            return folder
        from bytelm.data.prepare import ensure_prepared

        if self._tokenized():
            cfg = self._model_config()
            return Path(ensure_prepared(self.corpus, tokenizer="bpe", vocab_size=cfg.vocab_size))
        return Path(ensure_prepared(self.corpus))

    def prepare_data(self) -> None:
        if self.folder is None:
            self._locate()

    def setup(self, stage: str | None = None) -> None:
        if self.folder is not None:
            return
        self.folder = self._locate()
        manifest = json.loads((self.folder / "manifest.json").read_text())
        if self._tokenized():
            self._check_tokenizer(manifest)
            from bytelm.data.tokenizer import BpeTokenizer

            self.tokenizer = BpeTokenizer(str(self.folder / "tokenizer.model"))
            self.token_bytes = np.asarray(self.tokenizer.token_bytes, dtype=np.int64)
            self.model_seq_len = max(2, round(self.seq_len / self._model_config().bytes_per_token))
        max_len = getattr(self._model_config(), "max_seq_len", None)
        if max_len is not None and self.model_seq_len > max_len:
            raise BytelmError(
                f"data.seq_len gives windows of {self.model_seq_len} positions > the model's "
                f"max_seq_len {max_len}"
            )

    def _check_tokenizer(self, manifest: dict) -> None:
        """The baseline's vocab and bytes per token must fit the prepared tokenizer."""
        cfg, tok = self._model_config(), manifest.get("tokenizer")
        if not tok:
            raise BytelmError(f"{self.folder} has no BPE token shards; prepare it with --tokenizer bpe")
        if int(tok["vocab_size"]) != cfg.vocab_size:
            raise BytelmError(
                f"model vocab_size {cfg.vocab_size} != tokenizer vocab_size {tok['vocab_size']} "
                f"in {self.folder}"
            )
        measured = float(tok["bytes_per_token"]["train"])
        if abs(cfg.bytes_per_token - measured) > BYTES_PER_TOKEN_TOLERANCE * measured:
            raise BytelmError(
                f"recipe bytes_per_token {cfg.bytes_per_token} is more than 5% off the data's "
                f"{measured:.4f} (train split of {self.folder}); set it to {measured:.3f}"
            )

    # ---- loaders ---------------------------------------------------------------------------

    def _shard(self, split: str, kind: str | None = None) -> np.ndarray:
        from bytelm.data.shards import load_shard

        return load_shard(self.folder, split, kind or ("tokens" if self._tokenized() else "bytes"))

    def val_ids(self) -> tuple[np.ndarray, int]:
        """The ids validation scores and the BOS id they are conditioned on: the first
        `val_bytes` bytes of the val split (all for 0), as bytes or as exactly their tokens."""
        if not self._tokenized():
            data = self._shard("val")
            return (data[: self.val_bytes] if self.val_bytes else data), BOS_ID
        if not self.val_bytes:
            return self._shard("val"), self.tokenizer.bos_id
        head = self._shard("val", "bytes")[: self.val_bytes]
        return self.tokenizer.encode_array(head.tobytes()), self.tokenizer.bos_id

    def train_dataloader(self) -> DataLoader:
        from bytelm.data.windows import TrainWindows

        data = self._shard("train")
        if len(data) <= self.model_seq_len + 1:
            raise BytelmError(f"the train split ({len(data)} positions) is shorter than one window")
        windows = TrainWindows(
            data, self.model_seq_len, self.batch_size, self.seed,
            rank=self.trainer.global_rank, world_size=self.trainer.world_size,
        )
        start = self.trainer.lightning_module.batches_seen
        return DataLoader(_TrainBatches(windows, start, self.token_bytes), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        from bytelm.data.windows import eval_windows, token_eval_windows

        data, bos = self.val_ids()
        if self.token_bytes is None:
            windows = eval_windows(data, self.model_seq_len, self.val_context, bos)
        else:
            windows = token_eval_windows(
                data, self.model_seq_len, self.val_context, self.token_bytes, bos
            )
        return DataLoader(_ValBatches(list(windows), self.batch_size), batch_size=None)

    def bytes_per_batch(self) -> int:
        """Bytes one optimizer step sees on one rank (nominal for a baseline)."""
        return self.batch_size * self.seq_len
