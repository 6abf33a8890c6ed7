"""A release folder's files all carry the same ordinary permissions, and its card prints the
seed as the number it is."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from release_fixtures import tiny_model, write_run_dir

from bytelm import cli
from bytelm.release_layout import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE


def test_release_files_share_permissions_and_the_card_prints_the_seed(tmp_path: Path, capsys):
    run = write_run_dir(tiny_model("hybrid"), tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "seed": 1234}))
    out = tmp_path / "release"
    assert cli.main(["release", str(run), "--out", str(out)]) == 0
    mode = stat.S_IMODE((out / CONFIG_FILE).stat().st_mode)
    assert stat.S_IMODE((out / WEIGHTS_FILE).stat().st_mode) == mode
    card = (out / CARD_FILE).read_text()
    assert "1234" in card and "1,234" not in card
