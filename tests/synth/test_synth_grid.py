"""Grids: the shipped ones parse; a bad grid is one clear line, a non-zero exit, nothing written."""

from pathlib import Path

import pytest
import yaml

from bytelm import cli
from bytelm.errors import BytelmError
from bytelm.synth.grid import GRID_DIR, load_grid, parse_grid, parser_letters

GOOD = {
    "train": {"steps": 2, "batch_size": 4},
    "models": {"layouts": ["T2", ["M1S1"]], "d_model": [64]},
    "tasks": [{"task": "mqar", "pairs": [4, 8], "seq_len": 64, "eval_scales": [1, 2]}],
}


@pytest.mark.parametrize("name", sorted(p.stem for p in GRID_DIR.glob("*.yaml")))
def test_shipped_grids_parse_and_comment_every_key(name: str) -> None:
    grid = load_grid(name)
    assert grid.cells and len({c.id for c in grid.cells}) == len(grid.cells)
    lines = (GRID_DIR / f"{name}.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith(("#", "-")) and ":" in line:
            assert lines[i - 1].lstrip().startswith("#"), f"{name}.yaml line {i + 1} has no comment"


def test_grid_expands_tasks_times_layouts_times_widths() -> None:
    grid = parse_grid(GOOD, "t")
    assert [c.id for c in grid.cells] == [
        "mqar-p4-s64__T2__d64", "mqar-p4-s64__M1S1__d64",
        "mqar-p8-s64__T2__d64", "mqar-p8-s64__M1S1__d64",
    ]
    assert grid.cells[0].model_config.layout == ["T2"]


def test_star_layout_is_every_letter_the_layout_parser_accepts() -> None:
    letters = parser_letters()
    assert set("mstrlce") <= set(letters)
    grid = parse_grid({**GOOD, "models": {"layouts": ["*2", "M1S1"], "d_model": [64]}}, "t")
    layouts = [c.model_name for c in grid.cells if c.task.pairs == 4]
    assert layouts == [f"{c.upper()}2" for c in letters] + ["M1S1"]


def test_task_entry_overrides_train_settings_and_models() -> None:
    tasks = [
        GOOD["tasks"][0],
        {"task": "copy", "seq_len": 32, "train": {"steps": 5}, "models": {"layouts": ["T2"], "d_model": [32]}},
    ]
    grid = parse_grid({**GOOD, "tasks": tasks}, "t")
    copy = [c for c in grid.cells if c.task.name == "copy"]
    assert [(c.model_name, c.d_model, c.train.steps, c.train.batch_size) for c in copy] == [("T2", 32, 5, 4)]
    assert {c.train.steps for c in grid.cells if c.task.name == "mqar"} == {2}
    assert copy[0].spec()["train"]["steps"] == 5


BAD = {
    "unknown letter": ({"models": {"layouts": ["Q2"], "d_model": [64]}}, "unknown letter"),
    "pairs do not fit": ({"tasks": [{"task": "mqar", "pairs": 32, "seq_len": 64}]}, "do not fit length 64"),
    "eval scale not a positive int": (
        {"tasks": [{"task": "mqar", "pairs": 8, "seq_len": 64, "eval_scales": [0]}]}, "eval_scales"),
    "empty grid": ({"tasks": []}, "no cells"),
    "unknown task": ({"tasks": [{"task": "sorting", "seq_len": 64}]}, "unknown task 'sorting'"),
    "unknown key": ({"trian": {}}, "unknown key 'trian'"),
    "star without a count": ({"models": {"layouts": ["*"], "d_model": [64]}}, "block count"),
    "task train override not positive": (
        {"tasks": [{"task": "mqar", "pairs": 4, "seq_len": 64, "train": {"steps": 0}}]}, "tasks[0].train.steps"),
    "unknown init": ({"train": {"init": "xavier"}}, "train.init"),
    "bytes pairs do not fit": (
        {"tasks": [{"task": "bytes_mqar", "pairs": 8, "seq_len": 128}],
         "byte_models": {"hybrid": {"layout": ["m1", ["M1S1"], "m1"]}}}, "do not fit length 128"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_grid_is_one_line_exit_2_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = BAD[case]
    grid_path = tmp_path / "bad.yaml"
    grid_path.write_text(yaml.safe_dump({**GOOD, **change}))
    out = tmp_path / "out"
    assert cli.main(["synth", "--grid", str(grid_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bytelm synth: error: grid ") and message in err
    assert not out.exists()


def test_missing_grid_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(BytelmError, match="no such file"):
        load_grid(tmp_path / "nowhere.yaml")


def test_fan_in_init_redraws_linears_and_embedding_and_keeps_the_rest() -> None:
    import torch

    from bytelm.models import build_model
    from bytelm.synth.grid import token_config
    from bytelm.synth.train import fan_in_init

    torch.manual_seed(0)
    model = build_model(token_config(["T2"], 64, {}, 64))
    norms = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() < 2}
    fan_in_init(model)
    qkv = model.backbone.blocks[0].mixer.qkv.weight
    bound = 1 / qkv.shape[1] ** 0.5  # U(+-1/sqrt(fan_in))
    assert qkv.abs().max() <= bound and abs(qkv.std().item() - bound / 3**0.5) < 0.01
    assert abs(model.embedding.weight.std().item() - 1.0) < 0.05
    assert all(torch.equal(p, norms[n]) for n, p in model.named_parameters() if p.dim() < 2)
