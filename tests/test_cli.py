"""The `bytelm` router: help lists every command, user errors are one line and exit 2."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from bytelm import cli
from bytelm.errors import BytelmError


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bytelm.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in cli.COMMANDS:
        assert f"\n  {name} " in result.stdout


def test_every_command_module_has_main() -> None:
    import importlib

    for name, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(getattr(module, "main", None)), name


def test_user_error_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_main(argv: list[str]) -> int:
        raise BytelmError(f"no such corpus: {argv[0]}")

    fake = types.ModuleType("fake_command")
    fake.main = failing_main
    monkeypatch.setitem(sys.modules, "fake_command", fake)
    monkeypatch.setitem(cli.COMMANDS, "prepare", ("fake_command", "test double"))
    assert cli.main(["prepare", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert err == "bytelm prepare: error: no such corpus: nowhere\n"


def test_unknown_command_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2


# ---- bad input, command by command: one line on stderr, exit 2 -------------------------------

# (id, argv with {run} a tiny run dir, {bad_jsonl} a jsonl file that is not UTF-8, {tmp} a fresh
# folder, {corpus} the tinyshakespeare text; a fragment of the one line)
MISTAKES = [
    ("prepare-non-utf8-jsonl", ["prepare", "--source", "{bad_jsonl}", "--out", "{tmp}/p"],
     "bad.jsonl"),
    ("prepare-missing-source", ["prepare", "--source", "{tmp}/none.txt", "--out", "{tmp}/p"],
     "none.txt"),
    ("eval-unknown-task", ["eval", "harness", "{run}", "--tasks", "bytelm_nosuch", "--limit", "1"],
     "--tasks bytelm_nosuch"),
    ("eval-negative-max-bytes", ["eval", "bpb", "{run}", "--corpus", "{corpus}", "--max-bytes", "-5"],
     "--max-bytes -5"),
    ("eval-offset-past-end", ["eval", "bpb", "{run}", "--corpus", "{corpus}", "--offset", "99999999"],
     "--offset 99999999: past the end"),
    ("eval-missing-model", ["eval", "bpb", "{tmp}/missing"], "missing"),
    ("eval-unknown-group", ["eval", "all", "{run}", "--out", "{tmp}/e", "--groups", "nosuch"],
     "nosuch"),
    ("generate-device-tpu", ["generate", "{run}", "--prompt", "a", "--device", "tpu"],
     "--device tpu"),
    ("release-missing-run", ["release", "{tmp}/missing", "--out", "{tmp}/rel"], "missing"),
]


@pytest.fixture(scope="module")
def bad_input_env(data_dir, tmp_path_factory):
    from release_fixtures import tiny_model, write_run_dir

    root = tmp_path_factory.mktemp("bad-input")
    patch = pytest.MonkeyPatch()
    patch.setenv("BYTELM_DATA_DIR", data_dir)
    patch.setenv("BYTELM_CACHE", str(root / "cache"))
    (root / "bad.jsonl").write_bytes(b'{"text": "caf\xe9 au lait"}\n{"text": "\xff\xfe"}\n')
    subs = {
        "{run}": str(write_run_dir(tiny_model("hybrid"), root / "run")),
        "{bad_jsonl}": str(root / "bad.jsonl"),
        "{corpus}": str(Path(data_dir) / "tinyshakespeare" / "input.txt"),
    }
    yield subs
    patch.undo()


@pytest.mark.parametrize("case", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_command_mistake_is_one_line(case, bad_input_env, tmp_path, capfd) -> None:
    name, argv, fragment = case
    subs = {**bad_input_env, "{tmp}": str(tmp_path)}
    for key, value in subs.items():
        argv = [a.replace(key, value) for a in argv]
    capfd.readouterr()
    code = cli.main(argv)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"bytelm {argv[0]}: error: "), err
    assert fragment in lines[0], err


def test_version() -> None:
    from bytelm import __version__

    result = subprocess.run(
        [sys.executable, "-m", "bytelm.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == f"bytelm {__version__}"


def test_closed_stdout_pipe_is_no_traceback(bad_input_env) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytelm.cli", "eval", "bpb", bad_input_env["{run}"],
         "--corpus", bad_input_env["{corpus}"], "--max-bytes", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    proc.stdout.close()  # like `| head` that has already gone
    err = proc.stderr.read()
    proc.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141
