"""Exact scoring: uniform logits, batching, windows, rolling log-likelihood against bpb, greedy."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from eval_doubles import VOCAB, TrieModel, UniformModel, loaded
from release_fixtures import TEXT, tiny_model, train_tokenizer

from bytelm.data.tokenizer import BpeTokenizer, ByteCodec
from bytelm.eval.bpb import text_bpb
from bytelm.eval.lm import BytelmLM
from bytelm.eval.scoring import Scorer, rolling_windows


def requests(*pairs) -> list[SimpleNamespace]:
    return [SimpleNamespace(args=p) for p in pairs]


PAIRS = [
    ("The quick brown", " fox"),
    ("Sphinx of black quartz,", " judge my vow."),
    ("Café, naïve,", " façade"),
    ("", "Pack my box"),
    ("How vexingly quick daft zebras jump;", " the five boxing wizards jump quickly."),
    ("x", "y"),
]


def test_uniform_model_gives_n_log_one_over_v():
    lm = BytelmLM(loaded=loaded(UniformModel()))
    results = lm.loglikelihood(requests(*PAIRS))
    for (_ctx, cont), (logprob, _) in zip(PAIRS, results):
        n = len(cont.encode("utf-8"))
        assert logprob == pytest.approx(n * math.log(1 / VOCAB), abs=1e-9)
    text = "Any text at all: 12 bytes"
    (rolling,) = lm.loglikelihood_rolling(requests((text,)))
    assert rolling == pytest.approx(len(text.encode()) * math.log(1 / VOCAB), abs=1e-9)


def test_context_trailing_space_moves_to_continuation():
    scorer = Scorer(UniformModel(), ByteCodec())
    assert scorer.encode_pair("ab ", "c") == (list(b"ab"), list(b" c"))
    assert scorer.encode_pair("", "c") == ([256], list(b"c"))


def test_greedy_flag_follows_the_oracle():
    gold = "The quick brown fox"
    lm = BytelmLM(loaded=loaded(TrieModel([gold])))
    (good, good_greedy), (bad, bad_greedy) = lm.loglikelihood(
        requests(("The quick brown", " fox"), ("The quick brown", " box"))
    )
    assert good_greedy and not bad_greedy
    assert good > -1e-3 and bad < -1000


@pytest.mark.parametrize(
    "n,max_length,context", [(2, 4, 0), (10, 4, 1), (100, 16, 4), (17, 16, 15)]
)
def test_rolling_windows_score_every_target_once(n, max_length, context):
    scored = []
    for w in rolling_windows(n, max_length, context):
        assert w.end - w.start <= max_length
        assert w.score_from - 1 - w.start >= min(context, w.score_from - 1)
        scored += list(range(w.score_from, w.end + 1))
    assert scored == list(range(1, n))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module", params=["hybrid", "baseline"])
def real(request, tokenizer):
    if request.param == "hybrid":
        return loaded(tiny_model("hybrid"))
    return loaded(tiny_model("baseline", tokenizer), codec=BpeTokenizer(tokenizer))


def test_batched_equals_one_at_a_time(real):
    lm = BytelmLM(loaded=real)
    batched = lm.loglikelihood(requests(*PAIRS))
    lm.scorer.token_budget = 1  # one request per forward pass
    single = [lm.loglikelihood(requests(p))[0] for p in PAIRS]
    for (a, ga), (b, gb) in zip(batched, single):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-4)
        assert ga == gb
    assert all(lp < 0 for lp, _ in batched)


def test_rolling_equals_bpb_evaluator_and_a_plain_forward(real):
    lm = BytelmLM(loaded=real, max_length=4096)
    (rolling,) = lm.loglikelihood_rolling(requests((TEXT,)))
    data = TEXT.encode("utf-8")
    result = text_bpb(lm.scorer, data)
    assert result["bytes"] == len(data)
    assert -rolling == pytest.approx(result["nll_nats"], rel=1e-6)
    assert result["bpb"] == pytest.approx(-rolling / len(data) / math.log(2), rel=1e-6)
    ids = [256 if real.codec.kind == "bytes" else real.codec.bos_id] + real.codec.encode(data)
    with torch.no_grad():
        logits = real.model(torch.tensor([ids[:-1]])).logits[0].float()  # [T, V]
    manual = logits.log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None]).sum()
    assert rolling == pytest.approx(float(manual), rel=1e-5)


def test_windowed_rolling_equals_per_window_forward(real):
    scorer = Scorer(real.model, real.codec, max_length=24)
    ids = real.codec.encode(TEXT)
    seq = [256 if real.codec.kind == "bytes" else real.codec.bos_id] + ids
    expected = 0.0
    for w in rolling_windows(len(seq), 24, 6):
        with torch.no_grad():
            logits = real.model(torch.tensor([seq[w.start : w.end]])).logits[0].float()
        logp = logits.log_softmax(-1)
        for t in range(w.score_from, w.end + 1):
            expected += float(logp[t - 1 - w.start, seq[t]])
    assert scorer.rolling_logprob(ids) == pytest.approx(expected, rel=1e-5)


def _greedy_by_forward(real, context: str, max_new: int) -> str:
    """Greedy decoding by full forward passes: each next id the argmax of the last position."""
    seq = real.codec.encode(context)
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(real.model(torch.tensor([seq])).logits[0, -1].argmax())
            if nxt == real.codec.eos_id:
                break
            seq.append(nxt)
    return real.codec.decode(seq[len(real.codec.encode(context)) :]).decode("utf-8", "replace")


def test_greedy_matches_full_forward_and_stops(real):
    assert Scorer(real.model, real.codec).greedy("The quick brown", [], 12) == _greedy_by_forward(
        real, "The quick brown", 12
    )
    oracle = Scorer(TrieModel(['Answer: "t h e" and more']), ByteCodec())
    assert oracle.greedy('Answer: "', ['"'], 40) == "t h e"


def test_shared_prefix_scoring_equals_batched_forward(real):
    context = TEXT
    pairs = [(context, " alpha"), (context, " beta"), (context, "!"), ("Short one", " two")]
    forward = BytelmLM(loaded=real, max_length=400)
    forward.scorer.share_min = 10**9
    shared = BytelmLM(loaded=real, max_length=400)
    shared.scorer.share_min = 64
    calls = []
    real_prefill = real.model.prefill
    real.model.prefill = lambda ids, *a, **k: (
        calls.append(ids.shape[1]) or real_prefill(ids, *a, **k)
    )
    try:
        got = shared.loglikelihood(requests(*pairs))
    finally:
        del real.model.prefill
    longest_choice = max(len(real.codec.encode(cont)) for _, cont in pairs)
    # the shared context is prefilled once; each choice is one short prefill after it
    assert len([n for n in calls if n > longest_choice]) == 1
    assert len([n for n in calls if 1 < n <= longest_choice]) <= 3
    for (a, ga), (b, gb) in zip(got, forward.loglikelihood(requests(*pairs))):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-3)
        assert ga == gb
