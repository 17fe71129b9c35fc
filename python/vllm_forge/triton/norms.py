"""rms_norm and fused_add_rms_norm: one program per row, the whole row in registers."""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton import next_power_of_2
from vllm_forge.triton.jit_math import row_offset

# One row lives in one tile; wider rows than any model's hidden size are refused.
MAX_HIDDEN = 65536


@triton.jit
def _rms_norm_kernel(
    out_ptr,
    out_inner_count,
    out_inner_stride,
    out_outer_stride,
    x_ptr,
    x_inner_count,
    x_inner_stride,
    x_outer_stride,
    residual_ptr,
    res_inner_count,
    res_inner_stride,
    res_outer_stride,
    weight_ptr,
    n_cols,
    epsilon,
    HAS_WEIGHT: tl.constexpr,
    ADD_RESIDUAL: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """y = x / sqrt(mean(x^2) + eps) * w, in fp32. With ADD_RESIDUAL, x = x + residual
    first, the sum stored (rounded) into residual and normalised unrounded. Rows are
    found through their RowLayout (checks.row_layout): at most two levels of strides."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x_row = x_ptr + row_offset(row, x_inner_count, x_inner_stride, x_outer_stride)
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    if ADD_RESIDUAL:
        res_ptrs = (
            residual_ptr
            + cols
            + row_offset(row, res_inner_count, res_inner_stride, res_outer_stride)
        )
        x += tl.load(res_ptrs, mask=mask, other=0.0).to(tl.float32)
        tl.store(res_ptrs, x.to(residual_ptr.dtype.element_ty), mask=mask)
    y = x * tl.math.rsqrt(tl.sum(x * x, axis=0) / n_cols + epsilon)
    if HAS_WEIGHT:
        y *= tl.load(weight_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    out_row = out_ptr + row_offset(row, out_inner_count, out_inner_stride, out_outer_stride)
    tl.store(out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(
    op: str,
    out: torch.Tensor,
    out_rows: checks.RowLayout,
    x: torch.Tensor,
    x_rows: checks.RowLayout,
    residual: torch.Tensor | None,
    res_rows: checks.RowLayout,
    weight: torch.Tensor | None,
    epsilon: float,
) -> None:
    if x.numel() == 0:
        return
    n_cols = x.shape[-1]
    checks.check(
        n_cols <= MAX_HIDDEN,
        op,
        f"the Triton kernel takes a hidden size of at most {MAX_HIDDEN}, got {n_cols}",
    )
    _rms_norm_kernel[(x.numel() // n_cols,)](
        out,
        *out_rows,
        x,
        *x_rows,
        residual if residual is not None else x,
        *res_rows,
        weight if weight is not None else x,
        n_cols,
        float(epsilon),
        HAS_WEIGHT=weight is not None,
        ADD_RESIDUAL=residual is not None,
        BLOCK=next_power_of_2(n_cols),
    )


def rms_norm(
    out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    out_rows, input_rows = checks.rms_norm(out, input, weight, epsilon)
    _launch("rms_norm", out, out_rows, input, input_rows, None, input_rows, weight, epsilon)


def fused_add_rms_norm(
    input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    input_rows, res_rows = checks.fused_add_rms_norm(input, residual, weight, epsilon)
    _launch(
        "fused_add_rms_norm",
        input,
        input_rows,
        input,
        input_rows,
        residual,
        res_rows,
        weight,
        epsilon,
    )
