"""Layout letters r/R, l/L, c/C, e/E and their per-level settings: parsed, broadcast per level,
and a clear ConfigError naming the field for a value that does not fit."""

import pytest

from bytelm.config import ConfigError, ModelConfig

BASE = dict(d_model=[16, 24], d_intermediate=[0, 48], n_heads=[2, 2], n_kv_heads=[2, 2],
            chunking=["dynamic"], target_compression=[2.5], ssm_headdim=8)


def test_family_letters_parse_and_settings_broadcast():
    cfg = ModelConfig(layout=["r1l1", ["C2E1S1"], "e1c1"], **BASE, s4d_headdim=8, mega_headdim=[4, 8])
    assert cfg.levels[1]["main"] == ["C", "C", "E", "S"]
    assert cfg.rec_heads == [2, 2] and cfg.s4d_headdim == [8, 8] and cfg.mega_headdim == [4, 8]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("overrides,field", [
    (dict(layout=["r1", ["M1"], "m1"], rec_heads=3), "rec_heads"),
    (dict(layout=["m1", ["L1"], "m1"], rec_heads=[2, 5]), "rec_heads"),
    (dict(layout=["r1", ["M1"], "m1"], rec_heads=[16, 2], rec_expand=1), "rec_heads"),  # odd key dim
    (dict(layout=["c1", ["M1"], "m1"], s4d_headdim=5), "s4d_headdim"),
    (dict(layout=["m1", ["C1"], "m1"], s4d_d_state=0), "s4d_d_state"),
    (dict(layout=["e1", ["M1"], "m1"], mega_headdim=[7, 16]), "mega_headdim"),
    (dict(layout=["m1", ["E1"], "m1"], mega_window=0), "mega_window"),
    (dict(layout=["m1", ["E1"], "m1"], mega_ema_dim=[1, 2, 3]), "mega_ema_dim"),
    (dict(layout=["m1", ["Q1"], "m1"]), "layout"),
])
def test_bad_family_settings_name_their_field(overrides, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        ModelConfig(**{**BASE, **overrides})


def test_settings_of_unused_families_are_not_checked():
    ModelConfig(layout=["m1", ["M1"], "m1"], **BASE, s4d_headdim=5, rec_heads=7)
