"""silu_and_mul and gelu_and_mul: out[..., :d] = act(x[..., :d]) * x[..., d:]."""

import torch
import triton
import triton.language as tl

from vllm_forge.triton import row_view
from vllm_forge.triton.checks import check, check_float, check_same
from vllm_forge.triton.jit_math import tanh

SILU, GELU_ERF, GELU_TANH = 0, 1, 2
BLOCK = 1024


@triton.jit
def _gated_activation_kernel(out_ptr, stride_out_row, x_ptr, stride_x_row, d,
                             ACTIVATION: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < d
    x_row = x_ptr + row * stride_x_row
    gate = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_row + d + cols, mask=mask, other=0.0).to(tl.float32)
    if ACTIVATION == 0:
        act = gate / (1.0 + tl.exp(-gate))
    elif ACTIVATION == 1:
        act = 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476))
    else:
        inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
        act = 0.5 * gate * (1.0 + tanh(inner))
    tl.store(out_ptr + row * stride_out_row + cols, (act * up).to(out_ptr.dtype.element_ty),
             mask=mask)


def _launch(op: str, out: torch.Tensor, x: torch.Tensor, activation: int) -> None:
    check_float(op, "input", x)
    check_same(op, "out", out, "input", x)
    check(x.dim() >= 1 and x.shape[-1] % 2 == 0, op,
          f"input's last dimension must be even, got shape {tuple(x.shape)}")
    d = x.shape[-1] // 2
    check(out.shape == x.shape[:-1] + (d,), op,
          f"out must have shape {tuple(x.shape[:-1]) + (d,)}, got {tuple(out.shape)}")
    out2, x2 = row_view(out, "out"), row_view(x, "input")
    if x2.shape[0] == 0 or d == 0:
        return
    _gated_activation_kernel[(x2.shape[0], triton.cdiv(d, BLOCK))](
        out2, out2.stride(0), x2, x2.stride(0), d, ACTIVATION=activation, BLOCK=BLOCK)


def silu_and_mul(out: torch.Tensor, input: torch.Tensor) -> None:
    _launch("silu_and_mul", out, input, SILU)


def gelu_and_mul(out: torch.Tensor, input: torch.Tensor, approximate: str) -> None:
    check(approximate in ("none", "tanh"), "gelu_and_mul",
          f"approximate must be 'none' or 'tanh', got {approximate!r}")
    _launch("gelu_and_mul", out, input, GELU_ERF if approximate == "none" else GELU_TANH)
