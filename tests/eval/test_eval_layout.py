"""One layout for evaluation results: `bytelm eval bpb` on a run directory writes the file that
`bytelm eval all` writes and `bytelm report` reads, whatever the corpus is called."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from release_fixtures import tiny_model, write_run_dir

from bytelm.cli import main as bytelm_main


def test_eval_bpb_on_a_path_corpus_is_read_by_report(data_dir, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("BYTELM_DATA_DIR", data_dir)
    monkeypatch.setenv("BYTELM_CACHE", str(tmp_path / "cache"))
    run = write_run_dir(tiny_model("hybrid"), tmp_path / "tiny-hybrid")
    shutil.rmtree(run / "eval")  # evaluated by nothing yet
    corpus = os.path.join(data_dir, "tinyshakespeare", "input.txt")
    assert bytelm_main(["eval", "bpb", str(run), "--corpus", corpus, "--max-bytes", "1000"]) == 0
    assert [p.name for p in (run / "eval").rglob("*") if p.is_file()] == ["bpb.json"]
    result = json.loads((run / "eval" / "bpb.json").read_text())
    assert result["corpus"] == corpus and result["bytes"] == 1000
    capsys.readouterr()
    assert bytelm_main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"{result['bpb']:.4f}" in report


def test_report_without_evaluations_embeds_no_empty_plots(tmp_path: Path):
    run = write_run_dir(tiny_model("hybrid"), tmp_path / "tiny-hybrid")
    shutil.rmtree(run / "eval")
    assert bytelm_main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "REPORT.md").read_text()
    assert "![" not in report
    assert not list((tmp_path / "report").glob("*.png"))
