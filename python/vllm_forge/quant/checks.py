"""quant_gemm's argument checks for the Python providers (torch reference, Triton): the
conditions, order and words of the native op's csrc/launch/quant_gemm.cpp, and its
exception type (TORCH_CHECK raises RuntimeError), so every provider rejects a bad call
the same way. The FORGE_CHECK_* helpers are the other ops' (vllm_forge.ops.checks)."""

import torch

from vllm_forge.ops.checks import (
    c10_name,
    contiguous,
    dim,
    fail,
    floating,
    last_dim_contiguous,
    same_device,
    same_dtype,
    shape,
    shares_memory,
    strides,
)
from vllm_forge.quant.format import (
    BITS,
    GROUP_SIZES,
    TILE_N,
    num_groups,
    num_tiles,
    tiled_columns,
)

OP = "quant_gemm"


def quant_gemm(
    out: torch.Tensor,
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    mins: torch.Tensor | None,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
) -> None:
    """Raise RuntimeError naming the argument and the value for any call the native op
    refuses; return None for a valid one."""
    if bits not in BITS:
        fail(OP, f"bits must be 4 or 8, got {bits}")
    if group_size not in GROUP_SIZES:
        fail(OP, f"group_size must be 16, 32, 64, 128 or 256, got {group_size}")
    dim(OP, "x", x, 2)
    floating(OP, "x", x)
    last_dim_contiguous(OP, "x", x)
    same_device(OP, "out", out, "x", x)
    same_device(OP, "qweight", qweight, "x", x)
    same_device(OP, "scales", scales, "x", x)
    m, k = x.shape
    dim(OP, "out", out, 2)
    same_dtype(OP, "out", out, "x", x)
    n = out.shape[1]  # the tiled form pads N to whole tiles: N is the output's
    if out.shape[0] != m:
        fail(OP, f"out must have shape [{m}, N] (x.size(0), N), got {shape(out)}")
    last_dim_contiguous(OP, "out", out)
    dim(OP, "qweight", qweight, 2)
    if bits == 8 and qweight.dtype != torch.int8:
        fail(
            OP,
            "qweight must have dtype int8 for bits=8 (one code per weight), got "
            f"{c10_name(qweight.dtype)}",
        )
    if bits == 4 and qweight.dtype != torch.uint8:
        fail(
            OP,
            "qweight must have dtype uint8 for bits=4 (two codes per byte), got "
            f"{c10_name(qweight.dtype)}",
        )
    tiles, cols = num_tiles(n), tiled_columns(k, bits)
    if tuple(qweight.shape) != (tiles, cols):
        fail(
            OP,
            f"qweight must have shape [{tiles}, {cols}] (tiles of 16 of N={n} (out.size(1)), "
            f"bytes per tile for K={k} (x.size(1)) and bits={bits}), got {shape(qweight)}",
        )
    last_dim_contiguous(OP, "qweight", qweight)
    groups = num_groups(k, group_size)
    dim(OP, "scales", scales, 3)
    if scales.dtype not in (torch.float32, torch.float16):
        fail(OP, f"scales must have dtype float32 or float16, got {c10_name(scales.dtype)}")
    if tuple(scales.shape) != (tiles, groups, TILE_N):
        fail(
            OP,
            f"scales must have shape [{tiles}, {groups}, {TILE_N}] (tiles, ceil(K / group_size) "
            f"for K={k}, group_size={group_size}, 16), got {shape(scales)}",
        )
    contiguous(OP, "scales", scales)
    if mins is not None:
        same_device(OP, "mins", mins, "x", x)
        same_dtype(OP, "mins", mins, "scales", scales)
        if mins.shape != scales.shape or mins.stride() != scales.stride():
            fail(
                OP,
                f"mins must have the shape and strides of scales {shape(scales)} "
                f"{strides(scales)}, got {shape(mins)} {strides(mins)}",
            )
    if bias is not None:
        same_device(OP, "bias", bias, "x", x)
        same_dtype(OP, "bias", bias, "x", x)
        if not (bias.dim() == 1 and bias.shape[0] == n):
            fail(OP, f"bias must have shape [{n}] (N = out.size(1)), got {shape(bias)}")
        last_dim_contiguous(OP, "bias", bias)
    if out.numel() and shares_memory(out, x):
        fail(OP, "out must not share memory with x")
