"""Every recipe parses through the training CLI, comments every key, and builds on the meta
device; matched pairs agree on data and budget and within 10% FLOPs per byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from entropy_fixtures import stand_in_entropy_lm, with_entropy_lm

from bytelm.config import config_from_dict
from bytelm.models import build_model
from bytelm.training.cli import _BytelmCLI
from bytelm.training.datamodule import ShardDataModule
from bytelm.training.module import LitLM

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ALL = sorted(p.stem for p in RECIPES.glob("*.yaml"))
PAIRS = [("tiny-hybrid", "tiny-baseline"), ("small-hybrid", "small-baseline"),
         ("small-hybrid-2stage", "small-baseline"), ("large-hybrid", "large-baseline")]
SAME_BUDGET = [("tiny-hybrid", name) for name in
               ("tiny-hybrid-space", "tiny-hybrid-fixed4", "tiny-hybrid-2stage", "tiny-ssm-only",
                "tiny-hybrid-entropy")]
FAMILIES = [f"tiny-hybrid-{f}" for f in ("retnet", "linear", "s4d", "mega")] + [
    f"tiny-{f}-only" for f in ("retnet", "linear", "s4d", "mega")
]
FAMILIES += [f"tiny-hybrid-{f}" for f in ("gla", "gdn", "rwkv7")] + [
    f"tiny-{f}-only" for f in ("gla", "gdn", "rwkv7")
]
SAME_BUDGET += [("tiny-hybrid", name) for name in FAMILIES]
MATCHED = FAMILIES + ["tiny-hybrid-entropy"]  # within 10% of tiny-hybrid's FLOPs per byte
KEY = re.compile(r"^\s*[A-Za-z_][\w]*:")
ENTROPY_LM: list[Path] = []  # the stand-in entropy model (see `entropy_lm`)


@pytest.fixture(scope="module", autouse=True)
def entropy_lm(tmp_path_factory):
    """An entropy recipe names a run dir that training makes (`tiny-entropy-lm`); a random
    model of that recipe's config stands in for it."""
    ENTROPY_LM.append(stand_in_entropy_lm(tmp_path_factory.mktemp("entropy-lm") / "run", RECIPES))
    yield
    ENTROPY_LM.clear()


def _load(name: str) -> dict:
    path = RECIPES / f"{name}.yaml"
    assert path.is_file(), f"recipe {name} is missing"
    return yaml.safe_load(path.read_text())


def _meta_model(recipe: dict):
    config = with_entropy_lm(recipe["model"]["config"], ENTROPY_LM[0])
    with torch.device("meta"):
        return build_model(config_from_dict(config))


def _flops_per_byte(recipe: dict) -> float:
    return _meta_model(recipe).flops_per_byte(recipe["data"]["seq_len"])


class _ParseOnly(_BytelmCLI):
    """The training CLI's parser and validation, without building models or trainers."""

    def instantiate_classes(self) -> None:
        pass


def test_the_recipe_set_is_complete():
    names = {n for pair in PAIRS + SAME_BUDGET for n in pair}
    assert names <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_recipe_parses_comments_every_key_and_builds_on_meta(name: str, tmp_path: Path):
    path = RECIPES / f"{name}.yaml"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if KEY.match(line) and not line.strip().startswith("#"):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") or " # " in line, f"{name}:{i + 1} key without a comment"

    _ParseOnly.run_dir = tmp_path
    cli = _ParseOnly(LitLM, ShardDataModule, args=["--config", str(path)], run=False,
                     save_config_callback=None)
    assert isinstance(cli.config["seed_everything"], int)
    recipe = _load(name)
    assert recipe["trainer"]["max_steps"] > 0
    model = _meta_model(recipe)
    assert model.num_parameters() > model.num_parameters(exclude_embeddings=True) > 0
    if model.config.kind == "baseline":
        tokens = round(recipe["data"]["seq_len"] / model.config.bytes_per_token)
        assert tokens <= model.config.max_seq_len


def _budget(recipe: dict) -> tuple:
    data, trainer = recipe["data"], recipe["trainer"]
    return (data["corpus"], data["batch_size"], data["seq_len"], trainer["max_steps"],
            trainer.get("devices"), trainer.get("num_nodes", 1))


@pytest.mark.parametrize("hybrid,baseline", PAIRS, ids=[f"{a}~{b}" for a, b in PAIRS])
def test_pairs_match_bytes_and_flops_per_byte(hybrid: str, baseline: str):
    h, b = _load(hybrid), _load(baseline)
    assert _budget(h) == _budget(b)
    fh, fb = _flops_per_byte(h), _flops_per_byte(b)
    assert abs(fh - fb) <= 0.1 * fb, f"{hybrid} {fh:.4g} vs {baseline} {fb:.4g} FLOPs per byte"


@pytest.mark.parametrize("reference,ablation", SAME_BUDGET, ids=[b for _, b in SAME_BUDGET])
def test_ablations_keep_the_tiny_budget(reference: str, ablation: str):
    assert _budget(_load(reference)) == _budget(_load(ablation))
    assert _load(reference)["seed_everything"] == _load(ablation)["seed_everything"]


@pytest.mark.parametrize("name", MATCHED)
def test_family_recipes_match_tiny_hybrid_flops_per_byte(name: str):
    reference, family = _flops_per_byte(_load("tiny-hybrid")), _flops_per_byte(_load(name))
    assert abs(family - reference) <= 0.1 * reference, f"{name} {family:.4g} vs {reference:.4g}"
