"""Models: `build_model(cfg)` turns a config into an nn.Module whose forward returns `ModelOutput`.

`HybridLM` (bytelm.models.hybrid) for a `ModelConfig`; the tokenized baseline
(`bytelm.models.baseline.BaselineLM`) for a `BaselineConfig`. Both are imported on demand and
both answer `LanguageModel` (bytelm.models.contract), the one contract every consumer uses.
"""

from __future__ import annotations

from torch import nn

from bytelm.models.contract import LanguageModel, ModelOutput


def build_model(cfg) -> nn.Module:
    """HybridLM for a ModelConfig, BaselineLM for a BaselineConfig."""
    from bytelm.config import BaselineConfig, ModelConfig

    if isinstance(cfg, ModelConfig):
        from bytelm.models.hybrid import HybridLM

        return HybridLM(cfg)
    if isinstance(cfg, BaselineConfig):
        from bytelm.models.baseline import BaselineLM

        return BaselineLM(cfg)
    raise TypeError(f"build_model needs a ModelConfig or BaselineConfig, got {type(cfg).__name__}")


__all__ = ["LanguageModel", "ModelOutput", "build_model"]
