"""The synth generators: seeded, answerable from their own context, disjoint train/eval streams,
and scored so that an oracle gets 1.0 and a constant answer gets chance."""

import numpy as np
import pytest

from bytelm.synth.bytes_task import BytesMqar, row_text
from bytelm.synth.tasks import IGNORE, Copy, Induction, Mqar, SelectiveCopy, accuracy, row_keys
from bytelm.synth.train import TrainStream, eval_tasks, task_seed

TASKS = {
    "mqar-P8-T64": Mqar(8, 64),
    "mqar-P16-T64-V64": Mqar(16, 64, 64),
    "copy-T32": Copy(32),
    "selective_copy-K6-T40": SelectiveCopy(6, 40),
    "induction-T48": Induction(48),
    "bytes_mqar-P4-T160": BytesMqar(4, 160),
}


def oracle(task, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Predictions made from each row's inputs alone (up to and including the scored position)."""
    pred = np.full_like(inputs, -1)
    for i, row in enumerate(inputs):
        for t in np.nonzero(targets[i] != IGNORE)[0]:
            pred[i, t] = _answer(task, row[: t + 1])
    return pred


def _answer(task, seen: np.ndarray) -> int:
    """The token that must follow `seen`, read off the earlier part of the sequence."""
    if isinstance(task, Mqar):
        key = seen[-1]
        where = np.nonzero(seen[: 2 * task.pairs : 2] == key)[0]
        return int(seen[2 * where[0] + 1])
    if isinstance(task, Copy):
        sep = int(np.nonzero(seen == task.vocab_size - 1)[0][0])
        return int(seen[len(seen) - 1 - sep])
    if isinstance(task, SelectiveCopy):
        sep = int(np.nonzero(seen == task.vocab_size - 1)[0][0])
        data = seen[:sep][seen[:sep] != 0]
        return int(data[len(seen) - 1 - sep])
    if isinstance(task, Induction):
        first = int(np.nonzero(seen[:-1] == seen[-1])[0][0])
        return int(seen[first + 1])
    text = seen.astype(np.uint8).tobytes()  # bytes_mqar: find "key " before the query part
    query_at = text.index(b"? ")
    head, tail = text[:query_at], text[query_at + 2 :]
    key, partial = tail.rsplit(b", ", 1)[-1].rsplit(b"; ", 1)[-1].rsplit(b". ", 1)[-1].split(b" ", 1)
    pairs = {}
    for item in head.replace(b";", b",").replace(b".", b",").split(b", "):
        if item:
            k, v = item.split(b" ")
            pairs[k] = v
    return pairs[key][len(partial)]


@pytest.mark.parametrize("name", list(TASKS))
def test_generator_is_deterministic_from_the_seed(name: str) -> None:
    task = TASKS[name]
    a, b = (task.sample(np.random.default_rng(7), 16) for _ in range(2))
    c = task.sample(np.random.default_rng(8), 16)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, c.inputs)


@pytest.mark.parametrize("name", list(TASKS))
def test_oracle_reading_the_context_scores_one(name: str) -> None:
    task = TASKS[name]
    batch = task.sample(np.random.default_rng(0), 64)
    assert (batch.targets != IGNORE).any(axis=1).all()
    pred = oracle(task, batch.inputs, batch.targets)
    assert accuracy(pred, batch)[0] == 1.0


@pytest.mark.parametrize("name", [n for n in TASKS if not n.startswith("bytes")])
def test_constant_answer_scores_chance(name: str) -> None:
    task = TASKS[name]
    batch = task.sample(np.random.default_rng(1), 2000)
    acc, n = accuracy(np.full_like(batch.inputs, task.vocab_size - 2), batch)
    stderr = np.sqrt(task.chance * (1 - task.chance) / n)
    assert abs(acc - task.chance) < 4 * stderr + 1e-9


def test_bytes_constant_answer_scores_nothing() -> None:
    task = TASKS["bytes_mqar-P4-T160"]
    batch = task.sample(np.random.default_rng(1), 200)
    assert accuracy(np.full_like(batch.inputs, ord("e")), batch)[0] == 0.0


def test_mqar_queries_every_key_once_after_the_pairs() -> None:
    task = Mqar(8, 64)
    batch = task.sample(np.random.default_rng(2), 32)
    for row, target in zip(batch.inputs, batch.targets):
        queried = np.nonzero(target != IGNORE)[0]
        assert len(queried) == 8 and queried.min() >= 16
        assert sorted(row[queried]) == sorted(row[:16:2])
        assert (row[:16:2] < 128).all() and (row[1:16:2] >= 128).all()


def test_bytes_mqar_rows_are_letter_words_with_spaces_and_punctuation() -> None:
    task = BytesMqar(4, 160)
    batch = task.sample(np.random.default_rng(3), 8)
    for i in range(len(batch)):
        text = row_text(batch, i)
        head, tail = text.split(b"? ")
        words = head.replace(b",", b"").replace(b";", b"").replace(b".", b"").split()
        assert len(words) == 8 and all(w.isalpha() and 3 <= len(w) <= 8 for w in words)
        assert batch.answers[i].max() == 3


def test_train_stream_never_yields_an_eval_example() -> None:
    task = Copy(4, 8)  # so few strings that the two streams would meet without the filter
    seed = task_seed(0, task)
    evals = task.sample(np.random.default_rng([seed, 1, 4]), 64)
    held = set(row_keys(evals))
    raw = task.sample(np.random.default_rng([seed, 0]), 512)
    assert held & set(row_keys(raw)), "the unfiltered streams should overlap at this size"
    stream = TrainStream(task, seed, held)
    for _ in range(8):
        assert not held & set(row_keys(stream.next(64)))


def test_eval_lengths_scale_the_trained_length() -> None:
    tasks = eval_tasks(Mqar(8, 64), [1, 2])
    assert sorted(tasks) == [64, 128] and tasks[128].pairs == 8


class PairTokenizer:
    """Every two bytes one token (a new id per new piece): enough to check what `tokenize` scores."""

    def __init__(self) -> None:
        self.pieces: dict[bytes, int] = {}
        self.token_bytes = np.zeros(0, dtype=np.int64)

    def encode(self, text: bytes) -> list[int]:
        ids = []
        for i in range(0, len(text), 2):
            piece = text[i : i + 2]
            ids.append(self.pieces.setdefault(piece, len(self.pieces)))
        self.token_bytes = np.array([len(p) for p in self.pieces], dtype=np.int64)
        return ids


def test_tokenized_bytes_mqar_scores_the_tokens_covering_each_value() -> None:
    from bytelm.synth.bytes_task import tokenize

    task = BytesMqar(3, 128)
    batch = task.sample(np.random.default_rng(4), 4)
    tokens = tokenize(batch, PairTokenizer(), 64, pad_id=-5)
    for i in range(len(batch)):
        text = row_text(batch, i)
        for a in range(3):
            byte_pos = np.nonzero(batch.answers[i] == a)[0] + 1  # positions of the value's bytes
            token_pos = np.nonzero(tokens.answers[i] == a)[0] + 1  # positions of its tokens
            assert sorted({p // 2 for p in byte_pos}) == token_pos.tolist()
            assert (tokens.targets[i, token_pos - 1] == tokens.inputs[i, token_pos]).all()
        assert (tokens.inputs[i, (len(text) + 1) // 2 :] == -5).all()


def test_mixed_pairs_trains_on_one_to_p_pairs_and_evaluates_on_p() -> None:
    task = Mqar(8, 64, 64, train_pairs="mixed")
    assert task.sample(np.random.default_rng(5), 64).answers.max(axis=1).tolist() == [7] * 64
    rows = task.for_training().sample(np.random.default_rng(5), 800)
    counts = rows.answers.max(axis=1) + 1  # queries per row = its number of pairs
    assert sorted(set(counts.tolist())) == list(range(1, 9))
    assert np.bincount(counts, minlength=9)[1:].min() > 60  # about 100 each
    pred = np.full_like(rows.inputs, -1)
    for i, (row, target) in enumerate(zip(rows.inputs, rows.targets)):
        p = counts[i]
        for t in np.nonzero(target != IGNORE)[0]:
            pred[i, t] = row[2 * np.nonzero(row[: 2 * p : 2] == row[t])[0][0] + 1]
    assert accuracy(pred, rows)[0] == 1.0
    assert task.describe()["train_pairs"] == "mixed" and "train_pairs" not in Mqar(8, 64).describe()
