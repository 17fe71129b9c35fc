"""Triton kernels: the fallback where no native kernel serves an op.

One module per op family; each holds its `@triton.jit` kernels (torch-free, pointer
arguments `x_ptr`, strides `stride_x_row`, tile sizes `BLOCK_*`) and a launcher with the
same signature as the op (vllm_forge.ops). The launchers are registered as torch custom
ops by vllm_forge.ops.python_ops, so torch.compile treats them as opaque calls.

On CUDA the kernels compile for the GPU. On CPU they run only under TRITON_INTERPRET=1
(Triton's numpy interpreter: correct, slow, for tests). Triton decides at decoration time,
so the variable must be set before these modules are imported.
"""

import importlib.util
import os

import torch

# Tile sizes of tl.dot must be at least 16 on every backend.
MIN_DOT = 16


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def unavailable_reason(device_type: str) -> str:
    """Why Triton cannot serve tensors of this device type here ("" when it can)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if device_type == "cuda":
        return "" if torch.cuda.is_available() or interpreting() else "no CUDA device"
    if device_type == "cpu":
        return "" if interpreting() else "Triton runs CPU tensors only under TRITON_INTERPRET=1"
    return f"no Triton backend for {device_type} tensors"


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
