"""A study file with a mistake is one clear line and exit code 2, before anything trains or is
written: an unknown recipe, key, arm name or override, a key the study sets itself, a budget
smaller than one step, an `--only` that matches nothing, a cell folder of other settings."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import write_study

from bytelm.cli import main as bytelm


def _edit(path, change) -> None:
    spec = yaml.safe_load(path.read_text())
    change(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


CASES = {
    "unknown recipe": (lambda s: s["arms"][0].update(recipe="tiny-hybird"),
                       "arm hybrid: recipe 'tiny-hybird': no such recipe"),
    "unknown top key": (lambda s: s.update(seed=[1]), "unknown key 'seed'"),
    "unknown arm key": (lambda s: s["arms"][1].update(lr=0.1), "arms[1]: unknown key 'lr'"),
    "unknown baseline arm": (lambda s: s.update(baseline="bpe"),
                             "baseline: 'bpe' is not an arm (arms: hybrid, baseline)"),
    "unknown override": (lambda s: s["arms"][0]["overrides"].update({"data.batchsize": 1}),
                         "arm hybrid: unknown option --data.batchsize"),
    "bad override value": (lambda s: s["arms"][1]["overrides"].update({"data.batch_size": "x"}),
                           "arm baseline: --data.batch_size"),
    "override of a study key": (lambda s: s["arms"][0]["overrides"].update(
        {"trainer.max_steps": 3}), "trainer.max_steps is set by the study itself"),
    "arm named twice": (lambda s: s["arms"][1].update(name="hybrid"), "'hybrid' is used twice"),
    "budget under one step": (lambda s: s.update(budgets=[100]),
                              "budget 100 bytes is less than one step (128 bytes)"),
    "bad budget": (lambda s: s.update(budgets=["2 MB"]), "budgets[0] '2 MB': expected a number"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_study_file_is_one_line_before_anything_runs(case, tmp_path, study_data, capsys):
    path = write_study(tmp_path, study_data)
    change, message = CASES[case]
    _edit(path, change)
    out = tmp_path / "out"
    assert bytelm(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bytelm study: error: "), err
    assert message in err[0]
    assert not out.exists()


def test_only_that_matches_nothing_and_a_cell_of_other_settings(tmp_path, study_data, capsys):
    path = write_study(tmp_path, study_data)
    out = tmp_path / "out"
    assert bytelm(["study", str(path), "--out", str(out), "--only", "nothing-*"]) == 2
    assert "--only nothing-*: matches no cell" in capsys.readouterr().err
    cell = out / "cells" / "hybrid-256-s1"
    cell.mkdir(parents=True)
    (cell / "study_cell.json").write_text(json.dumps({"cell": "hybrid-256-s1", "lr": 1.0}))
    assert bytelm(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "this cell was run with other settings" in err[0]
    assert sorted(p.name for p in out.rglob("*")) == ["cells", "hybrid-256-s1", "study_cell.json"]
