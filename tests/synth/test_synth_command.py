"""`bytelm synth --quick` end to end: attention recalls, every file is written, reruns skip."""

import json
from pathlib import Path

import pytest

from bytelm import cli
from bytelm.eval.report import main as report_main

FILES = ["synth.json", "table.md", "accuracy_vs_dmodel.png", "accuracy_vs_state.png"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "quick"
    assert cli.main(["synth", "--quick", "--out", str(out)]) == 0
    return out


def _t2_cell(run: Path) -> dict:
    data = json.loads((run / "synth.json").read_text())
    return next(
        c for c in data["cells"]
        if c["task"] == "mqar" and c["model"] == "T2" and c["d_model"] == 64 and c["pairs"] == 8
        and c["seq_len"] == 64
    )


def test_quick_attention_learns_to_answer_with_a_value_from_the_context(quick_run: Path) -> None:
    cell = _t2_cell(quick_run)
    assert cell["answers"]["64"] == 8 * 256
    assert cell["accuracy"]["64"] > 3 * cell["chance"]  # values of the row, not any token


def test_quick_attention_recalls_eight_pairs_at_length_64(quick_run: Path) -> None:
    assert _t2_cell(quick_run)["accuracy"]["64"] >= 0.95


def test_quick_writes_every_file_and_every_cell(quick_run: Path) -> None:
    for name in FILES:
        assert (quick_run / name).is_file() and (quick_run / name).stat().st_size > 0, name
    data = json.loads((quick_run / "synth.json").read_text())
    ids = {c["id"] for c in data["cells"]}
    assert ids == {p.stem for p in (quick_run / "cells").glob("*.json")}
    for c in data["cells"]:
        assert c["params"] > c["params_no_embedding"] > 0 and c["state_bytes"] > 0 and c["steps"] > 0
    assert not list(quick_run.rglob(".*.tmp"))
    table = (quick_run / "table.md").read_text()
    assert "MQAR accuracy" in table and "T2" in table


def test_attention_state_is_the_kv_cache_at_that_length(quick_run: Path) -> None:
    data = json.loads((quick_run / "synth.json").read_text())
    cell = next(c for c in data["cells"] if c["model"] == "T2" and c["task"] == "mqar")
    kv = 2 * cell["seq_len"] * cell["d_model"] * 4  # keys and values, float32
    assert all(kv <= b <= kv + 16 * cell["seq_len"] for b in cell["state_bytes_per_layer"])


def test_rerun_skips_finished_cells(quick_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.read_bytes() for p in (quick_run / "cells").glob("*.json")}
    assert cli.main(["synth", "--quick", "--out", str(quick_run)]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped (done)") == len(before) and "trained," not in err
    assert {p.name: p.read_bytes() for p in (quick_run / "cells").glob("*.json")} == before
    assert json.loads((quick_run / "synth.json").read_text())["cells_trained_now"] == 0


def test_report_includes_the_synth_section(quick_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert report_main(["--synth", str(quick_run / "synth.json"), "--out", str(out)]) == 0
    text = (out / "REPORT.md").read_text()
    assert "## Recall trained from scratch (bytelm synth)" in text and "MQAR accuracy" in text
    assert (out / "accuracy_vs_dmodel.png").read_bytes()[:4] == b"\x89PNG"


def test_report_without_runs_or_synth_is_a_user_error(tmp_path: Path) -> None:
    assert cli.main(["report", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
