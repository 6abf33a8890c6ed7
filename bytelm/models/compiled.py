"""`torch.compile` for bytelm models: how a model is compiled, written once, and what it cost.

A compiled hybrid pads each chunk axis to its stage's capacity, or to the whole sequence when a row
has more chunks than that (bytelm.layers.chunking.chunk_capacity), so a training run meets two
shapes per stage at most; each is compiled once and reused. The chunk count is read on the host
once per stage (to pick the width), which is where the graph is cut. The recompile limit is raised
so that every shape of a long run (training, validation and test batches) keeps its graph instead
of falling back to eager after torch's default of 8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

RECOMPILE_LIMIT = 64


def compile_model(model: nn.Module) -> nn.Module:
    """Compile `model.forward` in place (parameter names, and so checkpoints, stay the same),
    with static shapes: each chunk-axis width gets its own graph."""
    import torch._dynamo.config as dynamo_config

    from bytelm.models.stage import Stage

    dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, RECOMPILE_LIMIT)
    for module in model.modules():
        if isinstance(module, Stage):
            module.padded = True
    model.compile(dynamic=False)
    return model


def compile_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` through `torch.compile` for decoding, one position per call, where per-call costs
    dominate: Inductor's size asserts on every input are off (the guards already check the
    inputs' shapes; at one byte per call the asserts cost about 10% of the hybrid's step)."""
    return torch.compile(fn, options={"size_asserts": False})


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


__all__ = ["compile_function", "compile_model", "compile_stats"]
