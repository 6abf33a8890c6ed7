"""What a run prints at its start, and the hardware figures its summary.json is measured by.

Model FLOPs utilisation (MFU) is measured against the dense matmul ceiling of the hardware:
on CPU the figures of the design notes for these 2-core machines (about 190 GFLOP/s fp32 and
400 GFLOP/s bf16, torch matmuls at 2048^3), on GPUs the vendors' dense bf16 peaks.
"""

from __future__ import annotations

import platform

import torch

CPU_PEAK_FLOPS = {"fp32": 190e9, "bf16": 400e9}
GPU_PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def hardware(accelerator_is_gpu: bool) -> str:
    """A short description of where the run trained."""
    if accelerator_is_gpu and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def peak_flops(accelerator_is_gpu: bool, precision: str) -> float | None:
    """The ceiling MFU is measured against, or None for unknown hardware."""
    if not accelerator_is_gpu:
        return CPU_PEAK_FLOPS["bf16" if "bf16" in precision else "fp32"]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    return next((v for k, v in GPU_PEAK_BF16_FLOPS.items() if k in name), None)


def start_lines(
    model: torch.nn.Module, flops_per_byte: float, bytes_total: int, bytes_per_step: int
) -> list[str]:
    """The lines printed before training: parameters, FLOPs per byte, bytes to be seen."""
    return [
        f"model: {model.config.kind}, {model.num_parameters():,} parameters "
        f"({model.num_parameters(exclude_embeddings=True):,} without the input embedding)",
        f"FLOPs per byte (forward+backward, at the configured compression): {flops_per_byte:.4g}",
        f"bytes to see: {bytes_total:,} ({bytes_per_step:,} per step), "
        f"training FLOPs about {flops_per_byte * bytes_total:.3g}",
    ]
