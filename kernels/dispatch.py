"""Which implementation a kernel op runs: Triton or the pure-PyTorch reference.

`BYTELM_KERNELS` chooses: `auto` (default) takes Triton for CUDA tensors when Triton imports and
the reference everywhere else; `triton` forces Triton (under `TRITON_INTERPRET=1` it runs on CPU
tensors too), `reference` forces the naive PyTorch path. The mode is read at call time, so tests
and benchmarks can switch it with an environment variable.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from bytelm.errors import BytelmError

MODES = ("auto", "triton", "reference")


def kernel_mode() -> str:
    """The requested mode, validated."""
    mode = os.environ.get("BYTELM_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise BytelmError(f"BYTELM_KERNELS={mode!r} is not one of {', '.join(MODES)}")
    return mode


def triton_available() -> bool:
    """True when the triton package is importable on this machine."""
    return importlib.util.find_spec("triton") is not None


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether an op called on these tensors should run its Triton kernel."""
    mode = kernel_mode()
    if mode == "reference":
        return False
    if mode == "triton":
        if not triton_available():
            raise BytelmError("BYTELM_KERNELS=triton but the triton package is not installed")
        return True
    return triton_available() and all(t.is_cuda for t in tensors)


def fla_available() -> bool:
    """True when flash-linear-attention (`pip install 'bytelm[fla]'`) is importable."""
    return importlib.util.find_spec("fla") is not None


def use_fla(*tensors: torch.Tensor) -> bool:
    """Whether a GLA / delta-rule / RWKV-7 op should run flash-linear-attention's Triton kernels:
    on CUDA tensors when it is installed (`auto`), always under `triton`, never under `reference`."""
    mode = kernel_mode()
    if mode == "reference":
        return False
    if mode == "triton":
        if not fla_available():
            raise BytelmError(
                "BYTELM_KERNELS=triton but flash-linear-attention is not installed "
                "(pip install 'bytelm[fla]')"
            )
        return True
    return fla_available() and all(t.is_cuda for t in tensors)
