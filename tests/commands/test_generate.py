"""`bytelm generate`: reproducible sampling, greedy = argmax of `step` for releases of both kinds,
batches, prompt files, flags. (The decoder's own edges: tests/test_generation.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from release_fixtures import tiny_model, train_tokenizer, write_run_dir

from bytelm import cli
from bytelm.checkpoint import load_model
from bytelm.commands.generate import (
    OrderedPrinter,
    build_parser,
    decoder_for,
    sampling_from_args,
)
from bytelm.generation import Sampling
from bytelm.release_writer import save_release

KINDS = ["hybrid", "baseline"]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen")
    tokenizer = train_tokenizer(root)
    out = {}
    for kind in KINDS:
        model = tiny_model(kind, tokenizer, seed=3)
        run = write_run_dir(model, root / f"run-{kind}", tokenizer if kind == "baseline" else None)
        out[kind] = save_release(run, root / f"release-{kind}")
    return out


def _argmax_decode(loaded, prompt: bytes, max_bytes: int) -> bytes:
    """Greedy decoding spelled out with prefill and step: the reference for temperature 0."""
    model, codec = loaded.model, loaded.codec
    ids = torch.tensor([codec.encode(prompt)])  # [1, T]
    out = b""
    with torch.no_grad():
        logits, state = model.prefill(ids)
        logits = logits[:, -1]  # [1, V]
        while len(out) < max_bytes:
            token = logits.argmax(-1)  # [1]
            if token.item() == codec.eos_id:
                break
            out += codec.decode([token.item()])
            logits, state = model.step(token, state)
    return out[:max_bytes]


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generation_is_argmax_of_step(releases: dict[str, Path], kind: str) -> None:
    loaded = load_model(releases[kind])
    prompt = "Café au lait, s'il vous plaît. ".encode()
    greedy = Sampling(max_bytes=24, temperature=0.0)
    got = decoder_for(loaded).generate([loaded.codec.encode(prompt)], greedy)
    assert got == [_argmax_decode(loaded, prompt, 24)]
    assert len(got[0]) > 0


def test_batch_of_prompts_equals_one_by_one(releases: dict[str, Path]) -> None:
    loaded = load_model(releases["hybrid"])
    prompts = [b"The quick brown fox", b"Pack my box with", b"The quick brown cat", b"x"]
    greedy = Sampling(max_bytes=16, temperature=0.0)
    decoder = decoder_for(loaded)
    batch = decoder.generate(prompts, greedy)
    assert batch == [decoder.generate([p], greedy)[0] for p in prompts]
    assert batch[0] != batch[2]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_generation_is_reproducible(
    releases: dict[str, Path], kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "generate",
        str(releases[kind]),
        "--prompt",
        "Once upon a time",
        "--max-bytes",
        "20",
        "--temperature",
        "1.0",
        "--top-k",
        "50",
        "--top-p",
        "0.95",
        "--device",
        "cpu",
    ]
    first = _run([*argv, "--seed", "7"], capsys)
    assert first[0] == 0 and first[1].endswith("\n")
    assert _run([*argv, "--seed", "7"], capsys)[1] == first[1]
    assert _run([*argv, "--seed", "8"], capsys)[1] != first[1]
    assert "model from" in first[2]  # notes go to stderr, text alone to stdout


def test_prompt_file_runs_as_a_batch_in_order(
    releases: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"First prompt\n\nA second, longer prompt\nThird\n")
    code, out, _ = _run(
        [
            "generate",
            str(releases["hybrid"]),
            "--prompt-file",
            str(prompts),
            "--max-bytes",
            "12",
            "--temperature",
            "0",
            "--stop",
            "\n",
        ],
        capsys,
    )
    assert code == 0
    loaded = load_model(releases["hybrid"])
    expected = decoder_for(loaded).generate(
        [b"First prompt", b"A second, longer prompt", b"Third"],
        Sampling(max_bytes=12, temperature=0.0, stops=[b"\n"]),
    )
    assert out == "".join(e.decode("utf-8", "replace") + "\n" for e in expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: dir"),
        (["{release}"], "one of the arguments --prompt --prompt-file is required"),
        (["{release}", "--prompt", "a", "--max-bytes", "0"], "invalid positive integer value: '0'"),
        (["{release}", "--prompt", "a", "--temperature", "-1"], "--temperature must be >= 0"),
        (["{release}", "--prompt", "a", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["{release}", "--prompt", "a", "--stop", ""], "--stop must not be empty"),
        (["{release}", "--prompt", "a", "--stop", "\\x"], "invalid \\x escape"),
        (["{release}", "--prompt", ""], "--prompt is empty"),
        (["{release}", "--prompt-file", "/no/such/file"], "prompt file not found"),
        (["/no/such/release", "--prompt", "a"], "no such run dir or release folder"),
    ],
)
def test_bad_arguments_are_one_line(
    releases: dict[str, Path], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(release=releases["hybrid"]) for a in argv]
    code, out, err = _run(["generate", *argv, "--device", "cpu"] if argv else ["generate"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("bytelm generate: error: ") and err.count("\n") == 1
    assert message in err


def test_stop_strings_take_backslash_escapes() -> None:
    args = build_parser().parse_args(["x", "--prompt", "a", "--stop", "\\n\\n", "--stop", "é"])
    assert sampling_from_args(args).stops == [b"\n\n", "é".encode()]


def test_printer_streams_current_completion_and_holds_later_ones() -> None:
    out = io.StringIO()
    printer = OrderedPrinter(2, out)
    printer.write(1, "later")
    printer.write(0, "now")
    assert out.getvalue() == "now"
    printer.close(1)
    printer.close(0)
    assert out.getvalue() == "now\nlater\n"
