"""rms_norm and fused_add_rms_norm: one program per row, the whole row in registers."""

import torch
import triton
import triton.language as tl

from vllm_forge.triton import next_power_of_2, row_view
from vllm_forge.triton.checks import check, check_float, check_same

# One row lives in one tile; wider rows than any model's hidden size are refused.
MAX_HIDDEN = 65536


@triton.jit
def _rms_norm_kernel(out_ptr, stride_out_row, x_ptr, stride_x_row, residual_ptr,
                     stride_residual_row, weight_ptr, n_cols, epsilon,
                     HAS_WEIGHT: tl.constexpr, ADD_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    """y = x / sqrt(mean(x^2) + eps) * w, in fp32. With ADD_RESIDUAL, x = x + residual
    first, the sum stored (rounded) into residual and normalised unrounded."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x_row + cols, mask=mask, other=0.0).to(tl.float32)
    if ADD_RESIDUAL:
        res_ptrs = residual_ptr + row * stride_residual_row + cols
        x += tl.load(res_ptrs, mask=mask, other=0.0).to(tl.float32)
        tl.store(res_ptrs, x.to(residual_ptr.dtype.element_ty), mask=mask)
    y = x * tl.math.rsqrt(tl.sum(x * x, axis=0) / n_cols + epsilon)
    if HAS_WEIGHT:
        y *= tl.load(weight_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(op: str, out: torch.Tensor, x: torch.Tensor, residual: torch.Tensor | None,
            weight: torch.Tensor | None, epsilon: float) -> None:
    check_float(op, "input", x)
    check_same(op, "out", out, "input", x)
    check(out.shape == x.shape, op, f"out shape {tuple(out.shape)} != input shape {tuple(x.shape)}")
    if residual is not None:
        check_same(op, "residual", residual, "input", x)
        check(residual.shape == x.shape, op,
              f"residual shape {tuple(residual.shape)} != input shape {tuple(x.shape)}")
    n_cols = x.shape[-1] if x.dim() else 0
    if weight is not None:
        check_same(op, "weight", weight, "input", x)
        check(weight.shape == (n_cols,), op,
              f"weight must have shape ({n_cols},), got {tuple(weight.shape)}")
        check(weight.is_contiguous(), op, "weight must be contiguous")
    check(0 < n_cols <= MAX_HIDDEN, op, f"hidden size must be in [1, {MAX_HIDDEN}], got {n_cols}")
    out2, x2 = row_view(out, "out"), row_view(x, "input")
    res2 = row_view(residual, "residual") if residual is not None else x2
    if x2.shape[0] == 0:
        return
    _rms_norm_kernel[(x2.shape[0],)](
        out2, out2.stride(0), x2, x2.stride(0), res2, res2.stride(0),
        weight if weight is not None else x2, n_cols, float(epsilon),
        HAS_WEIGHT=weight is not None, ADD_RESIDUAL=residual is not None,
        BLOCK=next_power_of_2(n_cols))


def rms_norm(out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor | None,
             epsilon: float) -> None:
    _launch("rms_norm", out, input, None, weight, epsilon)


def fused_add_rms_norm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None,
                       epsilon: float) -> None:
    _launch("fused_add_rms_norm", input, input, residual, weight, epsilon)
