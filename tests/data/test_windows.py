"""Training windows are a pure function of (seed, step, rank, world_size); eval windows score each id once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bytelm.data.shards import load_shard
from bytelm.data.tokenizer import BpeTokenizer
from bytelm.data.windows import TrainWindows, eval_windows, token_eval_windows
from bytelm.errors import BytelmError

DATA = np.random.default_rng(0).integers(0, 256, 10_007, dtype=np.uint8)


def test_batch_is_windows_of_the_data() -> None:
    windows = TrainWindows(DATA, seq_len=64, batch_size=8, seed=3)
    batch = windows.batch(5)
    assert batch.shape == (8, 65) and batch.dtype == np.int64
    for row, start in zip(batch, windows.offsets(5)):
        assert np.array_equal(row, DATA[start : start + 65])


def test_sampler_is_deterministic_and_resumes_exactly() -> None:
    first = TrainWindows(DATA, seq_len=32, batch_size=4, seed=7)
    sequence = [first.batch(step) for step in range(20)]
    resumed = TrainWindows(DATA, seq_len=32, batch_size=4, seed=7)  # a fresh process resuming at 12
    for step in range(12, 20):
        assert np.array_equal(resumed.batch(step), sequence[step])
    assert not np.array_equal(sequence[0], sequence[1])
    other_seed = TrainWindows(DATA, seq_len=32, batch_size=4, seed=8)
    assert not np.array_equal(other_seed.batch(0), sequence[0])


def test_ranks_draw_different_parts_of_one_global_batch() -> None:
    ranks = [TrainWindows(DATA, 16, 4, seed=1, rank=r, world_size=3) for r in range(3)]
    offsets = [w.offsets(9) for w in ranks]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(offsets[a], offsets[b])
    single = TrainWindows(DATA, 16, 12, seed=1)  # one process drawing the whole global batch
    assert np.array_equal(np.concatenate(offsets), single.offsets(9))


def test_offsets_reach_both_ends() -> None:
    data = np.arange(20, dtype=np.uint8)
    offsets = np.concatenate([TrainWindows(data, 9, 64, seed=0).offsets(s) for s in range(10)])
    assert offsets.min() == 0 and offsets.max() == len(data) - 10  # last window ends at the last id


@pytest.mark.parametrize(
    ("n", "seq_len", "context"), [(10_007, 64, 0), (10_007, 64, 48), (65, 64, 10), (1000, 7, 6)]
)
@pytest.mark.parametrize("bos", [None, 1])
def test_eval_windows_score_every_id_once(
    n: int, seq_len: int, context: int, bos: int | None
) -> None:
    data = np.arange(10, 10 + n)  # ids that tell their own position
    lead = 0 if bos is None else 1
    scored = np.zeros(n + lead, dtype=np.int64)  # per position of the stream [bos] + data
    for k, w in enumerate(eval_windows(data, seq_len, context, bos=bos)):
        assert w.ids.shape == (seq_len + 1,) and w.ids.dtype == np.int64
        start = 0 if w.ids[0] == bos else int(w.ids[0]) - 10 + lead
        assert w.score_from == 0 if k == 0 else w.score_from >= context
        scored[start + 1 + w.score_from : start + 1 + seq_len] += 1
        assert w.n_bytes == seq_len - w.score_from
    assert scored[0] == 0 and (scored[1:] == 1).all()


def test_eval_windows_left_context() -> None:
    windows = list(eval_windows(DATA[:1000], seq_len=100, context=30))
    assert windows[0].score_from == 0
    assert [w.score_from for w in windows[1:-1]] == [30] * (len(windows) - 2)
    assert windows[-1].score_from >= 30
    assert sum(w.n_bytes for w in windows) == 999


def test_token_eval_windows_count_exact_bytes(shakespeare_bpe: Path) -> None:
    tok = BpeTokenizer(shakespeare_bpe / "tokenizer.model")
    tokens = load_shard(shakespeare_bpe, "val", "tokens")
    n_bytes = len(load_shard(shakespeare_bpe, "val"))
    windows = list(token_eval_windows(tokens, 256, 64, tok.token_bytes, bos=tok.bos_id))
    assert sum(w.n_bytes for w in windows) == n_bytes  # with BOS every byte of the split is scored
    assert windows[0].ids[0] == tok.bos_id
    without_bos = sum(w.n_bytes for w in token_eval_windows(tokens, 256, 64, tok.token_bytes))
    assert without_bos == n_bytes - tok.token_bytes[tokens[0]]


def test_corpus_smaller_than_one_window() -> None:
    with pytest.raises(BytelmError, match="fewer than one window of seq_len \\+ 1 = 65"):
        TrainWindows(DATA[:64], seq_len=64, batch_size=1, seed=0)
    with pytest.raises(BytelmError, match="fewer than one window"):
        next(eval_windows(DATA[:10], seq_len=64, context=0))
