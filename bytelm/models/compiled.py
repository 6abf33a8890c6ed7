"""`torch.compile` for bytelm models: how a model is compiled, written once, and what it cost.

A compiled hybrid pads its chunk axes to a multiple of 64 (bytelm.layers.chunking.WIDTH_BUCKET),
so a training run meets a few shapes per stage; each is compiled once and reused. The chunk count is
read on the host once per stage (to pick the bucket), which is where the graph is cut. The
recompile limit is raised so that every bucket of a long run keeps its graph instead of falling
back to eager after torch's default of 8.
"""

from __future__ import annotations

from torch import nn

RECOMPILE_LIMIT = 64


def compile_model(model: nn.Module) -> nn.Module:
    """Compile `model.forward` in place (parameter names, and so checkpoints, stay the same),
    with static shapes: each chunk-axis bucket gets its own graph."""
    import torch._dynamo.config as dynamo_config

    from bytelm.layers.chunking import WIDTH_BUCKET
    from bytelm.models.hybrid import Stage

    dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, RECOMPILE_LIMIT)
    for module in model.modules():
        if isinstance(module, Stage):
            module.width_bucket = WIDTH_BUCKET
    model.compile(dynamic=False)
    return model


def compile_stats() -> dict[str, int]:
    """What torch.compile did so far in this process: graphs compiled (every recompilation adds
    one, so graphs beyond the first step's are recompiles), frames compiled, and graph breaks
    (resume functions dynamo made)."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "frames": int(counters["frames"]["ok"]),
        "graph_breaks": int(sum(counters["resumes"].values())),
    }


__all__ = ["compile_model", "compile_stats"]
