"""Shared cases for the gated activations (silu_and_mul, gelu_and_mul)."""

import torch

from tests.utils import TOLERANCES

WIDTHS = [2, 16, 1538, 11008, 11010]  # 2d; d = 1, 8, 769, 5504, 5505
ROWS = [1, 13]


def check_gated(op, ref_fn, dtype, rows, width, strided, *extra):
    if strided:
        x = (torch.randn(rows, width + 6) * 4).to(dtype)[:, :width]
    else:
        x = (torch.randn(rows, width) * 4).to(dtype)
    ref = torch.empty(rows, width // 2, dtype=dtype)
    ref_fn(ref, x, *extra)
    out = torch.full_like(ref, float("nan"))
    op(out, x, *extra)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


def check_3d(op, ref_fn, *extra):
    x = torch.randn(2, 5, 64)
    ref = torch.empty(2, 5, 32)
    ref_fn(ref, x, *extra)
    out = torch.empty(2, 5, 32)
    op(out, x, *extra)
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.float32])
