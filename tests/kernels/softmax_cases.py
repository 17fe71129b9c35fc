"""Shared cases for softmax and log_softmax."""

import torch

from tests.utils import TOLERANCES

SHAPES = [(1, 1), (3, 7), (17, 1000), (4, 32000), (2, 151936)]  # last two: vocabularies


def check(op, ref_fn, dtype, shape, temperature, strided):
    rows, cols = shape
    if strided:
        x = (torch.randn(rows, cols + 5) * 5).to(dtype)[:, :cols]
    else:
        x = (torch.randn(rows, cols) * 5).to(dtype)
    t = torch.rand(rows) * 2 + 0.1 if temperature else None
    ref = torch.empty(rows, cols, dtype=dtype)
    ref_fn(ref, x, t)
    out = torch.full_like(ref, float("nan"))
    op(out, x, t)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])
