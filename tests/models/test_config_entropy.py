"""The entropy rule's settings: each mistake is a ConfigError naming its field; the LM must be a
byte model that exists."""

from __future__ import annotations

import pytest
from entropy_fixtures import entropy_hybrid, save_entropy_lm
from hybrid_helpers import tiny_config
from release_fixtures import tiny_model, train_tokenizer, write_run_dir

from bytelm.config import ConfigError, ModelConfig
from bytelm.config_entropy import calibration_record, entropy_threshold
from bytelm.errors import BytelmError

ENTROPY = dict(chunking="entropy", entropy_model="runs/lm")

MISTAKES = [
    ("threshold-and-target", dict(ENTROPY, target_compression=[3.0], entropy_threshold=2.0), "both given"),
    ("negative-threshold", dict(ENTROPY, target_compression=[None], entropy_threshold=-0.5),
     "entropy_threshold: must be a non-negative"),
    ("threshold-not-a-number", dict(ENTROPY, target_compression=[None], entropy_threshold="high"),
     "entropy_threshold: must be a non-negative"),
    ("neither", dict(ENTROPY, target_compression=[None]), "needs a target"),
    ("target-too-small", dict(ENTROPY, target_compression=[1.0]), "must be > 1"),
    ("no-model", dict(chunking="entropy", target_compression=[3.0]), "entropy_model: the entropy stage needs"),
    ("bad-mode", dict(ENTROPY, target_compression=[3.0], entropy_mode="falling"), "entropy_mode"),
    ("model-without-rule", dict(entropy_model="runs/lm"), "no stage uses chunking 'entropy'"),
    ("null-target-for-dynamic", dict(target_compression=[None]), "needs a number"),
    ("stale-calibration", dict(ENTROPY, target_compression=[4.0],
                               entropy_calibration=calibration_record(1.5, 3.0, 8, 64, 3.1)),
     "calibrated toward target 3.0"),
]


@pytest.mark.parametrize("case", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_entropy_mistakes_name_their_field(case):
    _, settings, fragment = case
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        tiny_config(**settings)


def test_entropy_inside_a_two_stage_model_is_refused():
    two = {**tiny_config(stages=2).to_dict(), "chunking": ["dynamic", "entropy"]}
    with pytest.raises(ConfigError, match="only stage 0"):
        ModelConfig.from_dict(two)


def test_two_stages_take_entropy_outside_and_dynamic_inside():
    cfg = tiny_config(stages=2, **ENTROPY, target_compression=[3.0, 2.0])
    assert cfg.chunking == ["entropy", "dynamic"] and entropy_threshold(cfg) is None


def test_a_calibrated_config_round_trips_and_keeps_its_threshold():
    record = calibration_record(1.25, 3.0, 8, 64, 3.02)
    cfg = tiny_config(**ENTROPY, target_compression=[3.0], entropy_calibration=record)
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and entropy_threshold(again) == 1.25 and again.compression(0) == 3.0
    fixed = tiny_config(**ENTROPY, target_compression=[None], entropy_threshold=2.0,
                        entropy_calibration=calibration_record(2.0, None, 8, 64, 3.7))
    assert fixed.compression(0) == 3.7
    assert ModelConfig().target_compression == [3.0]


def test_a_missing_entropy_model_says_which_command_makes_it(tmp_path):
    missing = tmp_path / "runs" / "tiny-entropy-lm"
    with pytest.raises(BytelmError, match="bytelm train --config recipes/tiny-entropy-lm.yaml") as err:
        entropy_hybrid(missing)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_a_token_model_is_not_an_entropy_model(tmp_path):
    tokenizer = train_tokenizer(tmp_path)
    run = write_run_dir(tiny_model("baseline", tokenizer), tmp_path / "bpe", tokenizer)
    with pytest.raises(BytelmError, match="needs a byte model"):
        entropy_hybrid(run)


def test_the_stored_lm_loads_from_a_run_dir(tmp_path):
    model = entropy_hybrid(save_entropy_lm(tmp_path / "lm"))
    assert model.backbone.router.lm.config.layout == ["m2"]
