"""`bytelm release`: a verified folder, no overwrite without --force, bad input in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from release_fixtures import tiny_model, write_run_dir

from bytelm import cli
from bytelm.release_layout import CHECKSUMS_FILE, WEIGHTS_FILE


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run_dir(tiny_model("hybrid"), tmp_path_factory.mktemp("rel") / "run")


def test_release_writes_then_needs_force(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "release"
    assert cli.main(["release", str(run_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{out}\n" and f"verified {CHECKSUMS_FILE}" in captured.err
    assert (out / WEIGHTS_FILE).is_file()
    assert cli.main(["release", str(run_dir), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"bytelm release: error: {out}: already exists; pass --force to replace it\n"
    )
    assert cli.main(["release", str(run_dir), "--out", str(out), "--force"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: run_dir, --out"),
        (["{run}"], "the following arguments are required: --out"),
        (["{run}", "--out", "{tmp}/x", "--bogus"], "unrecognized arguments: --bogus"),
        (["{tmp}/missing", "--out", "{tmp}/x"], "not a run dir (no model_config.json)"),
    ],
)
def test_bad_arguments_are_one_line(
    run_dir: Path,
    tmp_path: Path,
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert cli.main(["release", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("bytelm release: error: ") and message in captured.err
    assert not (tmp_path / "x").exists()
