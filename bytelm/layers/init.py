"""Weight initialisation: every module sets its own parameters, children before parents.

Each bytelm module has a `reset_parameters()` that initialises what it owns (its own tensors
and the plain torch layers it holds, such as a projection's `nn.Linear`). `reset_tree` calls
them children first, so a parent's choice (identity routing projections, a zero residual) is
the last word and no generic pass over the module tree can overwrite it. A module with
`pretrained = True` (the entropy rule's frozen LM holder) keeps its children as they are.
"""

from __future__ import annotations

from torch import nn

STD = 0.02  # standard deviation of every projection and embedding that is not special


def reset_tree(module: nn.Module) -> None:
    """Call `reset_parameters()` on `module`'s sub-modules, children first, then on `module`;
    the children of a `pretrained` module are left alone."""
    if not getattr(module, "pretrained", False):
        for child in module.children():
            reset_tree(child)
    reset = getattr(module, "reset_parameters", None)
    if reset is not None:
        reset()


def output_std(n_blocks: int) -> float:
    """GPT-2's depth scaling for projections that write into the residual stream."""
    return STD / (2 * max(1, n_blocks)) ** 0.5
