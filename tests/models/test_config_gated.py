"""Layout letters g/G, d/D, w/W and their per-level settings: parsed, broadcast per level, and a
clear ConfigError naming the field for a value that does not fit."""

import pytest

from bytelm.config import ConfigError, ModelConfig

BASE = dict(d_model=[16, 24], d_intermediate=[0, 48], n_heads=[2, 2], n_kv_heads=[2, 2],
            chunking=["dynamic"], target_compression=[2.5], ssm_headdim=8)


def test_gated_letters_parse_and_settings_broadcast():
    cfg = ModelConfig(layout=["g1d1", ["W2D1G1S1"], "w1"], **BASE, gla_heads=[2, 4], rwkv_heads=[4, 3])
    assert cfg.levels[1]["main"] == ["W", "W", "D", "G", "S"]
    assert cfg.gla_heads == [2, 4] and cfg.gdn_heads == [2, 2] and cfg.rwkv_heads == [4, 3]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("overrides,field", [
    (dict(layout=["g1", ["M1"], "m1"], gla_heads=3), "gla_heads"),  # key width 8
    (dict(layout=["m1", ["G1"], "m1"], gla_heads=[2, 0]), "gla_heads"),
    (dict(layout=["d1", ["M1"], "m1"], gdn_heads=[3, 2]), "gdn_heads"),
    (dict(layout=["m1", ["D1"], "m1"], gdn_expand_v=0), "gdn_expand_v"),
    (dict(layout=["m1", ["W1"], "m1"], rwkv_heads=[2, 5]), "rwkv_heads"),
    (dict(layout=["w1", ["M1"], "m1"], rwkv_heads=[1, 2, 3]), "rwkv_heads"),
    (dict(layout=["m1", ["W1"], "m1"], d_intermediate=[0, 0]), "d_intermediate"),
    (dict(layout=["m1", ["X1"], "m1"]), "layout"),
])
def test_bad_gated_settings_name_their_field(overrides, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        ModelConfig(**{**BASE, **overrides})


def test_settings_of_unused_gated_families_are_not_checked():
    ModelConfig(layout=["m1", ["M1"], "m1"], **BASE, gla_heads=5, gdn_heads=7, rwkv_heads=11)
