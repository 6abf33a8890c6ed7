"""`bytelm study` end to end on tiny models: every file written, a rerun trains nothing, a study
killed in its second cell continues with the remaining cells only, a failed cell is reported
while the others go on, and a study continues elsewhere from its results.json alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_study
from train_helpers import hybrid_recipe, write_recipe

from bytelm.cli import main as bytelm
from bytelm.commands.study import run_study
from bytelm.study.report import PLOTS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _mtimes(folder: Path) -> dict[str, int]:
    """Modification times of every file below `folder` (a rewrite or a new file changes them)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def test_study_runs_every_cell_writes_every_file_and_a_rerun_trains_nothing(tmp_path, study_data):
    path = write_study(tmp_path, study_data)
    out = tmp_path / "out"
    states, code, _ = run_study(path, out)
    assert code == 0
    assert sorted(states) == sorted(
        f"{arm}-{budget}-s{seed}" for arm in ("hybrid", "baseline") for budget in (256, 512)
        for seed in (1, 2)
    )
    assert set(states.values()) == {"trained"}
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 8 and results["not_run"] == []
    for row in rows:
        assert row["status"] == "done"
        assert row["steps"] == row["budget"] // 128
        summary = json.loads((out / row["run_dir"] / "summary.json").read_text())
        assert summary["steps"] == row["steps"] and summary["seed"] == row["seed"]
        assert row["bytes"] == summary["bytes_seen"]
        assert row["training_flops"] == pytest.approx(row["flops_per_byte"] * row["bytes"])
        bpb = json.loads((out / row["run_dir"] / "eval" / "bpb.json").read_text())
        assert row["test_bpb"] == bpb["bpb"] and bpb["split"] == "test"
        assert row["heldout_bpb"] > 0 and row["final_val_bpb"] > 0 and row["wall_s"] > 0
        if row["arm"] == "hybrid":
            assert row["kind"] == "hybrid" and len(row["compression_test"]) == 1
            assert 0 <= row["word_start_precision"][0] <= row["word_edge_precision"][0] <= 1
            assert row["compression_curve"][-1][0] == row["steps"] - 1
        else:
            assert row["compression_test"] is None
    # every arm scored exactly the same test bytes
    assert len({r["test_bytes"] for r in rows}) == 1
    study_md = (out / "STUDY.md").read_text()
    for heading in ("mean ± sd over seeds", "## Paired comparison with baseline", "## Crossover",
                    "## Compression over training"):
        assert heading in study_md
    assert "- hybrid: " in study_md
    for name in (PLOTS[0], PLOTS[1], PLOTS[3]):
        assert (out / name).stat().st_size > 0 and f"]({name})" in study_md

    before = _mtimes(out / "cells")
    assert bytelm(["study", str(path), "--out", str(out)]) == 0
    assert _mtimes(out / "cells") == before  # nothing trained, nothing scored again
    states, code, _ = run_study(path, out)
    assert set(states.values()) == {"skipped"} and code == 0


def test_a_killed_study_continues_with_the_remaining_cells_only(tmp_path, study_data):
    counter = tmp_path / "runs-started"
    kill = [{"class_path": "study_probes.KillAtRun",
             "init_args": {"counter": str(counter), "run": 2}}]
    recipe = write_recipe(tmp_path / "h.yaml", hybrid_recipe(study_data))
    arms = [{"name": "hybrid", "recipe": str(recipe), "overrides": {"trainer.callbacks": kill}}]
    path = write_study(tmp_path, study_data, budgets=[256], seeds=[1, 2, 3], arms=arms,
                       baseline=None)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "bytelm.cli", "study", str(path), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "cells" / "hybrid-256-s1" / "eval" / "bpb.json").is_file()
    assert not (out / "cells" / "hybrid-256-s2" / "summary.json").exists()
    first = _mtimes(out / "cells" / "hybrid-256-s1")

    states, code, _ = run_study(path, out)
    assert code == 0
    assert states == {"hybrid-256-s1": "skipped", "hybrid-256-s2": "trained",
                      "hybrid-256-s3": "trained"}
    assert int(counter.read_text()) == 4  # 2 starts before the kill, then the two remaining
    assert _mtimes(out / "cells" / "hybrid-256-s1") == first
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["seed"] for r in rows] == [1, 2, 3] and {r["status"] for r in rows} == {"done"}


def test_a_failed_cell_is_reported_and_the_others_go_on(tmp_path, study_data, capsys):
    path = write_study(tmp_path, study_data, budgets=[256], seeds=[1])
    spec = yaml.safe_load(path.read_text())
    spec["arms"][0]["overrides"]["trainer.callbacks"] = [{"class_path": "study_probes.FailAtStep"}]
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    states, code, _ = run_study(path, out)
    assert code == 1
    assert states["baseline-256-s1"] == "trained"
    assert states["hybrid-256-s1"].startswith("failed: probe failure")
    rows = {r["cell"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["hybrid-256-s1"]["status"].startswith("failed")
    assert rows["baseline-256-s1"]["status"] == "done"
    assert "hybrid-256-s1: FAILED (probe failure" in capsys.readouterr().err
    assert "## Failed cells" in (out / "STUDY.md").read_text()


def test_a_study_continues_on_another_machine_from_its_results_json_alone(tmp_path, study_data):
    recipe = write_recipe(tmp_path / "h.yaml", hybrid_recipe(study_data))
    arms = [{"name": "hybrid", "recipe": str(recipe), "overrides": {}}]
    first = write_study(tmp_path, study_data, budgets=[256], seeds=[1, 2], arms=arms,
                        baseline=None)
    out = tmp_path / "out"
    assert run_study(first, out)[1] == 0
    trained = {r["cell"]: r for r in json.loads((out / "results.json").read_text())["rows"]}

    # elsewhere: only results.json travelled, one of its rows from a cell of other settings
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = json.loads((out / "results.json").read_text())
    moved["rows"][1]["identity"]["steps"] += 1
    (elsewhere / "results.json").write_text(json.dumps(moved))
    more = write_study(tmp_path, study_data, budgets=[256], seeds=[1, 2, 3], arms=arms,
                       baseline=None)
    states, code, _ = run_study(more, elsewhere)
    assert code == 0
    assert states == {"hybrid-256-s1": "recorded", "hybrid-256-s2": "trained",
                      "hybrid-256-s3": "trained"}
    assert not (elsewhere / "cells" / "hybrid-256-s1").exists()
    rows = {r["cell"]: r for r in json.loads((elsewhere / "results.json").read_text())["rows"]}
    assert rows["hybrid-256-s1"] == trained["hybrid-256-s1"]
    assert rows["hybrid-256-s2"]["identity"] == trained["hybrid-256-s2"]["identity"]
    assert "Cells: 3 done, 0 failed, 0 not run yet" in (elsewhere / "STUDY.md").read_text()
    assert run_study(more, elsewhere)[0] == {"hybrid-256-s1": "recorded",
                                             "hybrid-256-s2": "skipped",
                                             "hybrid-256-s3": "skipped"}
