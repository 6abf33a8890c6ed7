"""Every study file in recipes/studies/ comments every key, names recipes that exist and plans
through the training command's parser; every small-crossover cell builds on the meta device."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from bytelm.config import config_from_dict
from bytelm.models import build_model
from bytelm.study.plan import plan
from bytelm.study.spec import STUDY_DIR, load_study

STUDIES = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
KEY = re.compile(r"^\s*(- )?[A-Za-z_][\w.]*:")


def test_the_study_set_is_complete():
    assert {"tiny-lr", "tiny-crossover", "tiny-ablations", "small-crossover"} <= set(STUDIES)


@pytest.mark.parametrize("name", STUDIES)
def test_study_file_comments_every_key_and_plans(name: str, tmp_path: Path):
    lines = (STUDY_DIR / f"{name}.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if KEY.match(line) and not line.strip().startswith("#"):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") or " # " in line, f"{name}:{i + 1} key without a comment"
    study = load_study(name)
    cells = plan(study, tmp_path)
    assert len(cells) == sum(len(b.seeds) for b in study.budgets) * sum(
        len(a.lrs) or 1 for a in study.arms)
    assert len({c.id for c in cells}) == len(cells)
    assert study.baseline in {a.name for a in study.arms}


def test_tiny_crossover_cells_span_their_budgets():
    cells = plan(load_study("tiny-crossover"), Path("/nonexistent"))
    steps = {(c.arm, c.budget): c.steps for c in cells}
    assert steps[("tiny-hybrid", 2048000)] == 500 == steps[("tiny-baseline", 2048000)]
    assert steps[("tiny-hybrid", 32768000)] == 8000
    assert sorted(c.seed for c in cells if c.budget == 32768000) == [1, 1]


def test_every_small_crossover_cell_builds_on_the_meta_device(tmp_path: Path):
    cells = plan(load_study("small-crossover"), tmp_path)
    assert {c.budget for c in cells} == {10**9, 4 * 10**9, 16 * 10**9}
    for cell in cells:
        assert cell.steps == cell.budget // (32 * 2048)
        with torch.device("meta"):
            model = build_model(config_from_dict(dict(cell.recipe["model"]["config"])))
        assert model.flops_per_byte(cell.recipe["data"]["seq_len"]) > 0
        assert "--trainer.max_steps" in cell.args


def test_ablation_arms_stay_within_ten_percent_of_the_hybrids_flops_per_byte(tmp_path: Path):
    cells = {c.arm: c for c in plan(load_study("tiny-ablations"), tmp_path)}

    def flops(arm: str) -> float:
        recipe = cells[arm].recipe
        with torch.device("meta"):
            model = build_model(config_from_dict(dict(recipe["model"]["config"])))
        return model.flops_per_byte(recipe["data"]["seq_len"])

    reference = flops("dynamic")
    assert cells["attention-only"].recipe["model"]["config"]["layout"] == ["m2", ["S10"], "m2"]
    for arm in ("attention-only", "ssm-only", "tiny-baseline"):
        assert abs(flops(arm) - reference) <= 0.1 * reference, arm
