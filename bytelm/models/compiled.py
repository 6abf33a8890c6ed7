"""`torch.compile` for bytelm models: how a model is compiled, written once, and what it cost.

Two ways to compile a model for training (`compile` in a recipe): `whole` (true) compiles
`model.forward` as one call, cut only where each stage reads its chunk count; `block` compiles each
residual block alone, so the blocks of one letter and width share one compiled graph. Measured on
2 CPU cores for tiny-hybrid (README, Benchmarks): whole 270 ms per step after 279 s of cold
compilation, block 304 ms after 83 s, eager 397 ms; block pays over whole for runs shorter than
about 5,800 steps.

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

from bytelm.errors import BytelmError

RECOMPILE_LIMIT = 64
COMPILE_MODES = ("whole", "block")
# Inductor's options for decode steps, jit (`compile_function`) and ahead of time
# (bytelm.models.exported) alike: see `compile_function`.
DECODE_INDUCTOR_OPTIONS: dict[str, Any] = {"post_grad_fusion_options": {"decompose_mm_pass": {}}}


def compile_mode(value: bool | str | None) -> str | None:
    """A recipe's `compile` value as a mode: false or None -> None (eager), true -> "whole",
    "whole" or "block" as given; anything else is an error."""
    if value is None or value is False:
        return None
    if value is True:
        return "whole"
    if value not in COMPILE_MODES:
        raise BytelmError(f"compile must be true, false, 'whole' or 'block', not {value!r}")
    return value


def compile_model(model: nn.Module, mode: str = "whole") -> nn.Module:
    """Compile `model` in place (parameter names, and so checkpoints, stay the same) with static
    shapes, each chunk-axis width getting its own graph: `model.forward` whole, or with mode
    "block" each residual block's forward (the embedding, routing, chunking and head stay eager)."""
    import torch._dynamo.config as dynamo_config

    from bytelm.layers.network import Block
    from bytelm.models.baseline import Block as BaselineBlock
    from bytelm.models.stage import Stage

    if mode not in COMPILE_MODES:
        raise BytelmError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
    dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, RECOMPILE_LIMIT)
    for module in model.modules():
        if isinstance(module, Stage):
            module.padded = True
    if mode == "whole":
        model.compile(dynamic=False)
        return model
    for module in model.modules():
        if isinstance(module, (Block, BaselineBlock)):
            module.compile(dynamic=False)
    return model


def compile_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` through `torch.compile` for decoding, one position per call, where per-call costs
    dominate, for both model kinds alike:
    - Inductor's size asserts on every input are off (the guards already check the inputs'
      shapes; at one byte per call the asserts cost about 10% of the hybrid's step);
    - Inductor's `decompose_mm_pass`: on CPU, a one-row matrix product (every projection at
      batch 1) becomes a fused reduction in the generated C++ rather than a library call, and
      fuses with the elementwise work around it (on CUDA the pass only takes products of at
      least 10,240 rows, which decoding never makes). Trained tiny pair at 1K context, one
      process taking the variants in turn: hybrid 2,612 -> 2,691 bytes/s, baseline 5,099 ->
      5,661 (README, Benchmarks)."""
    return torch.compile(fn, options={"size_asserts": False, **DECODE_INDUCTOR_OPTIONS})


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


__all__ = ["COMPILE_MODES", "DECODE_INDUCTOR_OPTIONS", "compile_function", "compile_mode", "compile_model", "compile_stats"]
