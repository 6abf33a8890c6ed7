"""`bytelm bench mixers --quick` measures every letter against Mamba-2 and writes JSON."""

import json

import pytest

from bytelm.errors import BytelmError
from bytelm.layers.bench import LETTERS, main


def test_quick_bench_writes_every_letter(tmp_path, capsys):
    out = tmp_path / "mixers.json"
    assert main(["--quick", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["letter"] for r in rows] == list(LETTERS)
    assert all(r["ms"] > 0 and r["memory_mb"] > 0 for r in rows)
    assert next(r for r in rows if r["letter"] == "m")["vs_mamba2"] == 1.0
    assert "x Mamba-2" in capsys.readouterr().out


def test_unknown_letter_is_one_clear_error(tmp_path):
    with pytest.raises(BytelmError, match="--letters"):
        main(["--quick", "--letters", "mq", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
