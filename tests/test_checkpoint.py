"""Release folders and loading: exact round trips, no pickle, and clear refusals of bad folders."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from release_fixtures import tiny_model, train_tokenizer, write_run_dir

from bytelm import from_pretrained
from bytelm.checkpoint import load_model
from bytelm.checksums import write_checksums
from bytelm.data.tokenizer import BpeTokenizer, ByteCodec
from bytelm.errors import BytelmError
from bytelm.release_layout import CHECKSUMS_FILE, CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE
from bytelm.release_writer import save_release
from bytelm.run_dir import sha256_file

KINDS = ["hybrid", "baseline"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory, tokenizer: Path) -> dict:
    """For each kind: the model in memory, its run dir and its release folder."""
    out = {}
    for kind in KINDS:
        root = tmp_path_factory.mktemp(kind)
        model = tiny_model(kind, tokenizer)
        run = write_run_dir(model, root / "run", tokenizer if kind == "baseline" else None)
        out[kind] = (model, run, save_release(run, root / "release"))
    return out


def _copy(released: dict, kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(released[kind][2], tmp_path / "release"))


def _ids(model: torch.nn.Module) -> torch.Tensor:
    vocab = 256 if model.config.kind == "hybrid" else model.config.vocab_size
    return torch.randint(0, vocab, (2, 37), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", KINDS)
def test_release_gives_identical_logits(released: dict, kind: str) -> None:
    model, run, release = released[kind]
    ids = _ids(model)
    with torch.no_grad():
        expected = model(ids).logits  # [2, 37, V]
        assert torch.equal(from_pretrained(release)(ids).logits, expected)
        assert torch.equal(load_model(run).model(ids).logits, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_load_model_gives_codec_config_and_meta(released: dict, kind: str) -> None:
    model, run, release = released[kind]
    loaded = load_model(release)
    assert loaded.config == model.config
    assert isinstance(loaded.codec, ByteCodec if kind == "hybrid" else BpeTokenizer)
    assert loaded.meta["bytes_seen"] == 3_145_728
    assert loaded.meta["params"] == model.num_parameters()
    assert loaded.path == release
    assert not loaded.model.training
    assert load_model(run).meta == json.loads((run / "summary.json").read_text())


def test_release_folder_layout_and_card(released: dict) -> None:
    model, _, release = released["baseline"]
    names = sorted(p.name for p in release.iterdir())
    assert names == ["README.md", CHECKSUMS_FILE, CONFIG_FILE, WEIGHTS_FILE, "tokenizer.model"]
    lines = (release / CHECKSUMS_FILE).read_text().splitlines()
    assert lines == [
        f"{sha256_file(release / n)}  {n}" for n in sorted(set(names) - {CHECKSUMS_FILE})
    ]
    doc = json.loads((release / CONFIG_FILE).read_text())
    assert doc["format_version"] == FORMAT_VERSION and doc["kind"] == "baseline"
    assert doc["model"] == model.config.to_dict()
    card = (release / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: bytelm\n")
    for needle in (
        f"| parameters | {model.num_parameters():,} |",
        f"| parameters without the input embedding | {model.num_parameters(exclude_embeddings=True):,} |",
        "| bytes seen | 3,145,728 |",
        "| hardware | 2-core CPU |",
        "### bpb",
        "| bpb.val | 3.25 |",
        "### harness\n\n| | acc | acc_norm | n |",
        "| bytelm_piqa | 0.55 ± 0.02 | 0.56 | 100 |",
        "| bytelm_arc_easy | 0.31 | - | 50 |",
        "bytelm generate release",
    ):
        assert needle in card
    assert not [p for p in release.parent.iterdir() if p.name.startswith(".")]


def test_hybrid_release_has_no_tokenizer(released: dict) -> None:
    release = released["hybrid"][2]
    assert not (release / "tokenizer.model").exists()
    assert "| optimizer steps | 12 |" in (release / "README.md").read_text()


def test_from_pretrained_unpickles_nothing(released: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    for kind in KINDS:
        assert from_pretrained(released[kind][2]) is not None


def test_flipped_byte_in_weights_is_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "hybrid", tmp_path)
    data = bytearray((release / WEIGHTS_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (release / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(BytelmError, match=r"model\.safetensors: does not match its sha256"):
        from_pretrained(release)


def test_truncated_weights_are_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "baseline", tmp_path)
    data = (release / WEIGHTS_FILE).read_bytes()
    (release / WEIGHTS_FILE).write_bytes(data[: len(data) - 100])
    with pytest.raises(BytelmError, match=rf"truncated \({len(data) - 100} of {len(data)} bytes\)"):
        from_pretrained(release)


def test_truncated_weights_with_matching_checksums_are_refused(
    released: dict, tmp_path: Path
) -> None:
    release = _copy(released, "hybrid", tmp_path)
    data = (release / WEIGHTS_FILE).read_bytes()
    (release / WEIGHTS_FILE).write_bytes(data[:1000])
    write_checksums(release)
    with pytest.raises(BytelmError, match="not a readable safetensors file"):
        from_pretrained(release)


def _edit_config(release: Path, edit) -> None:
    """Change config.json and re-sign it, as a careless hand edit would."""
    doc = json.loads((release / CONFIG_FILE).read_text())
    edit(doc)
    (release / CONFIG_FILE).write_text(json.dumps(doc))
    write_checksums(release)


def test_missing_config_key_is_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "hybrid", tmp_path)
    _edit_config(release, lambda doc: doc["model"].pop("window"))
    with pytest.raises(
        BytelmError, match=r"config\.json: the hybrid model config lacks key\(s\) window"
    ):
        from_pretrained(release)


def test_baseline_folder_read_as_hybrid_config_is_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "baseline", tmp_path)

    def as_hybrid(doc: dict) -> None:
        doc["kind"] = doc["model"]["kind"] = "hybrid"

    _edit_config(release, as_hybrid)
    with pytest.raises(
        BytelmError, match="the hybrid model config lacks key.*layout.*does not know.*n_layers"
    ):
        from_pretrained(release)


def test_hybrid_config_over_baseline_weights_is_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "baseline", tmp_path)
    shutil.copyfile(released["hybrid"][2] / CONFIG_FILE, release / CONFIG_FILE)
    write_checksums(release)
    with pytest.raises(BytelmError, match="weights do not match the model config: .* missing"):
        from_pretrained(release)


def test_unknown_format_version_is_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "hybrid", tmp_path)
    _edit_config(release, lambda doc: doc.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(
        BytelmError, match=f"format version {FORMAT_VERSION + 1} is unknown.*upgrade"
    ):
        from_pretrained(release)


def test_missing_checksums_and_files_are_refused(released: dict, tmp_path: Path) -> None:
    release = _copy(released, "baseline", tmp_path)
    (release / "tokenizer.model").unlink()
    with pytest.raises(
        BytelmError, match="tokenizer.model: listed in checksums.sha256 but missing"
    ):
        load_model(release)
    (release / CHECKSUMS_FILE).unlink()
    with pytest.raises(BytelmError, match="has no checksums.sha256"):
        from_pretrained(release)


def test_existing_out_needs_force(released: dict, tmp_path: Path) -> None:
    run = released["hybrid"][1]
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(BytelmError, match="already exists; pass --force"):
        save_release(run, out)
    assert (out / "old.txt").exists()
    save_release(run, out, force=True)
    assert not (out / "old.txt").exists() and (out / WEIGHTS_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_pickled_objects_in_a_run_checkpoint_are_refused(released: dict, tmp_path: Path) -> None:
    run = Path(shutil.copytree(released["hybrid"][1], tmp_path / "run"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"] = {"where": Path("/somewhere")}
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    with pytest.raises(BytelmError, match="cannot be read as a weights-only checkpoint"):
        load_model(run)


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(BytelmError, match="no such run dir or release folder"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(BytelmError, match="neither a release folder"):
        load_model(tmp_path)
    with pytest.raises(BytelmError, match="not a run dir"):
        save_release(tmp_path, tmp_path / "out")
