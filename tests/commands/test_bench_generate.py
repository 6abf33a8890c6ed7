"""`bytelm bench generate`: JSON, table and plot in one run; the hybrid's state stays flat."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from release_fixtures import (
    baseline_config,
    hybrid_config,
    tiny_model,
    train_tokenizer,
    write_run_dir,
)

from bytelm import cli
from bytelm.commands.bench_generate import build_parser, parse_contexts
from bytelm.errors import BytelmError


def test_parse_contexts() -> None:
    assert parse_contexts("1K,64k, 512,1K") == [512, 1024, 65536]
    with pytest.raises(BytelmError, match="'2M' is not a length"):
        parse_contexts("1K,2M")


def test_compile_flag_names_the_compiler() -> None:
    """`--compile` alone is torch.compile's step, `--compile aot` the ahead-of-time one."""
    parse = build_parser().parse_args
    assert [parse(a).compile for a in ([], ["--compile"], ["--compile", "aot"])] == [None, "jit", "aot"]
    with pytest.raises(BytelmError, match="invalid choice: 'eager'"):
        parse(["--compile", "eager"])


def test_bench_generate_tiny_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name, config in (("hybrid", hybrid_config()), ("baseline", baseline_config(300))):
        (recipes / f"tiny_{name}.yaml").write_text(
            yaml.safe_dump({"model": {"config": config.to_dict()}})
        )
    argv = [
        "bench",
        "generate",
        "--pair",
        "tiny",
        "--recipes",
        str(recipes),
        "--contexts",
        "40,160",
        "--steps",
        "3",
        "--piece",
        "64",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "out"),
    ]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "out" / "generate_tiny_cpu.json").read_text())
    assert (tmp_path / "out" / "generate_tiny_cpu.png").stat().st_size > 1000
    rows = {(r["kind"], r["context_bytes"]): r for r in report["results"]}
    assert set(rows) == {(k, c) for k in ("hybrid", "baseline") for c in (40, 160)}
    assert report["hybrid_state_flat"]
    assert rows["hybrid", 40]["state_bytes"] == rows["hybrid", 160]["state_bytes"] > 0
    assert rows["baseline", 160]["state_bytes"] > 3 * rows["baseline", 40]["state_bytes"]
    assert rows["baseline", 160]["context_ids"] == 64  # 160 bytes at 2.5 bytes per token
    assert all(r["bytes_per_s"] > 0 for r in report["results"])
    assert rows["baseline", 40]["decoded_bytes_per_chunk"] is None
    assert all(len(rows["hybrid", c]["decoded_bytes_per_chunk"]) == 1 for c in (40, 160))
    assert all(rows["hybrid", c]["decoded_bytes_per_chunk"][0] >= 1.0 for c in (40, 160))
    assert report["rounds"] == 3
    for c in (40, 160):
        speeds = {k: rows[k, c]["round_bytes_per_s"] for k in ("hybrid", "baseline")}
        assert all(len(v) == 3 and rows[k, c]["bytes_per_s"] == statistics.median(v) for k, v in speeds.items())
        ratios = [h / b for h, b in zip(speeds["hybrid"], speeds["baseline"])]
        assert report["round_ratios_by_context"][str(c)] == pytest.approx(ratios)
        assert report["ratio_by_context"][str(c)] == pytest.approx(statistics.median(ratios))
    out = capsys.readouterr().out
    assert "| context | hybrid bytes/s |" in out and "hybrid decode state is flat" in out
    assert f"| {report['ratio_by_context']['160']:.2f} (" in out


def test_bench_generate_bad_contexts_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "generate", "--contexts", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'abc' is not a length" in err


def test_bench_generate_trained_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokenizer = train_tokenizer(tmp_path)
    runs = [
        write_run_dir(tiny_model("baseline", tokenizer), tmp_path / "baseline", tokenizer),
        write_run_dir(tiny_model("hybrid"), tmp_path / "hybrid"),
    ]
    argv = [
        "bench",
        "generate",
        "--runs",
        *map(str, runs),
        "--contexts",
        "700",
        "--steps",
        "256",  # more ids than the baseline's context (256) holds
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "out"),
    ]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "out" / "generate_tiny_cpu.json").read_text())
    assert report["source"].startswith("trained: ")
    baseline = next(r for r in report["results"] if r["kind"] == "baseline")
    assert baseline["context_ids"] == 280 and baseline["beyond_trained_context"]  # max_seq_len 256
    assert "| 700 |" in capsys.readouterr().out
