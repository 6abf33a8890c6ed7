"""A tiny random-initialised byte LM saved as a run dir, and hybrids that chunk by its entropy;
shared by the model and training tests."""

from __future__ import annotations

from pathlib import Path

import torch
from release_fixtures import write_run_dir

from bytelm.config import ModelConfig
from bytelm.models import build_model


def entropy_lm_config() -> ModelConfig:
    """An SSM-only byte LM without stages: two Mamba-2 layers at width 16."""
    return ModelConfig(
        layout=["m2"], d_model=[16], d_intermediate=[0], n_heads=[2], n_kv_heads=[2], window=[4],
        sinks=[0], chunking=[], target_compression=[], ssm_d_state=8, ssm_headdim=8,
        ssm_chunk_size=8,
    )


def save_entropy_lm(folder: Path, seed: int = 0) -> Path:
    """A run dir holding a random entropy LM, pushed far enough from its init that its
    entropies vary from byte to byte."""
    torch.manual_seed(seed)
    model = build_model(entropy_lm_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return write_run_dir(model, folder)


def entropy_config(lm: Path, stages: int = 1, **overrides) -> ModelConfig:
    """A small hybrid (Mamba and sliding-window attention on every level) whose stage 0 chunks by
    `lm`'s entropy at a fixed threshold of 5.5 nats unless `overrides` say otherwise."""
    if stages == 1:
        base = dict(
            layout=["m1S1", ["M1S1"], "s1m1"], d_model=[16, 24], d_intermediate=[32, 48],
            n_heads=[2, 2], n_kv_heads=[1, 2], window=[5, 4], sinks=[1, 2],
            chunking=["entropy"], target_compression=[None],
        )
    else:
        base = dict(
            layout=["m1", ["s1", ["M1T1"], "m1"], "S1"], d_model=[16, 16, 24],
            d_intermediate=[32, 32, 48], n_heads=[2, 2, 2], n_kv_heads=[1, 1, 2], window=[6, 3, 4],
            sinks=[2, 1, 0], chunking=["entropy", "dynamic"], target_compression=[None, 2.0],
        )
    base.update(ssm_d_state=8, ssm_headdim=8, ssm_chunk_size=8, entropy_model=str(lm),
                entropy_threshold=5.5)
    base.update(overrides)
    return ModelConfig(**base)


def entropy_hybrid(lm: Path, seed: int = 0, **overrides):
    """`entropy_config`'s model in float64 (the entropy LM inside stays float32), eval mode."""
    torch.manual_seed(seed)
    return build_model(entropy_config(lm, **overrides)).double().eval()


def stand_in_entropy_lm(folder: Path, recipes: Path) -> Path:
    """A random model of the `tiny-entropy-lm` recipe's config, saved as a run dir: it stands in
    for the run dir that training makes, which entropy recipes name."""
    import yaml

    from bytelm.config import config_from_dict

    recipe = yaml.safe_load((recipes / "tiny-entropy-lm.yaml").read_text())
    torch.manual_seed(0)
    return write_run_dir(build_model(config_from_dict(recipe["model"]["config"])), folder)


def with_entropy_lm(config: dict, lm: Path) -> dict:
    """A recipe's model config with its entropy model (if it names one) replaced by `lm`."""
    return {**config, "entropy_model": str(lm)} if config.get("entropy_model") else config
