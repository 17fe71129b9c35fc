"""silu_and_mul and gelu_and_mul: out[..., :d] = act(x[..., :d]) * x[..., d:]."""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton.jit_math import row_offset, tanh

SILU, GELU_ERF, GELU_TANH = 0, 1, 2
BLOCK = 1024


@triton.jit
def _gated_activation_kernel(
    out_ptr,
    out_inner_count,
    out_inner_stride,
    out_outer_stride,
    x_ptr,
    x_inner_count,
    x_inner_stride,
    x_outer_stride,
    d,
    ACTIVATION: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Rows are found through their RowLayout (checks.row_layout): at most two levels of
    strides."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < d
    x_row = x_ptr + row_offset(row, x_inner_count, x_inner_stride, x_outer_stride)
    gate = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_row + d + cols, mask=mask, other=0.0).to(tl.float32)
    if ACTIVATION == 0:
        act = gate / (1.0 + tl.exp(-gate))
    elif ACTIVATION == 1:
        act = 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476))
    else:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        act = 0.5 * gate * (1.0 + tanh(inner))
    out_row = out_ptr + row_offset(row, out_inner_count, out_inner_stride, out_outer_stride)
    tl.store(out_row + cols, (act * up).to(out_ptr.dtype.element_ty), mask=mask)


def _launch(op: str, out: torch.Tensor, x: torch.Tensor, activation: int) -> None:
    out_rows, x_rows = checks.gated_activation(op, out, x)
    if out.numel() == 0:
        return
    d = x.shape[-1] // 2
    _gated_activation_kernel[(out.numel() // d, triton.cdiv(d, BLOCK))](
        out, *out_rows, x, *x_rows, d, ACTIVATION=activation, BLOCK=BLOCK
    )


def silu_and_mul(out: torch.Tensor, input: torch.Tensor) -> None:
    _launch("silu_and_mul", out, input, SILU)


def gelu_and_mul(out: torch.Tensor, input: torch.Tensor, approximate: str) -> None:
    checks.gelu_approximate(approximate)  # before the tensors, as the native op does
    _launch("gelu_and_mul", out, input, GELU_ERF if approximate == "none" else GELU_TANH)
