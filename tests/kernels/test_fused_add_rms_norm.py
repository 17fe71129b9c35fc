"""fused_add_rms_norm (native, in place) against the pure-torch reference."""

import pytest
import torch

from tests.utils import DTYPES, TOLERANCES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.fused_add_rms_norm.default


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [8, 769, 5120, 20000])
@pytest.mark.parametrize("rows", [1, 33])
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(dtype, hidden, rows, strided):
    if strided:  # rows of a wider buffer
        x = torch.randn(rows, hidden + 3).to(dtype)[:, :hidden]
        r = torch.randn(rows, hidden + 5).to(dtype)[:, :hidden]
    else:
        x, r = torch.randn(rows, hidden).to(dtype), torch.randn(rows, hidden).to(dtype)
    w = (torch.rand(hidden) + 0.5).to(dtype)
    x_ref, r_ref = x.clone(), r.clone()
    reference.fused_add_rms_norm(x_ref, r_ref, w, 1e-6)
    op(x, r, w, 1e-6)
    torch.testing.assert_close(r, r_ref, **TOLERANCES[dtype])
    torch.testing.assert_close(x, x_ref, **TOLERANCES[dtype])


def test_3d_without_weight():
    x, r = torch.randn(2, 3, 64), torch.randn(2, 3, 64)
    x_ref, r_ref = x.clone(), r.clone()
    reference.fused_add_rms_norm(x_ref, r_ref, None, 1e-5)
    op(x, r, None, 1e-5)
    torch.testing.assert_close(x, x_ref, **TOLERANCES[torch.float32])
    torch.testing.assert_close(r, r_ref, **TOLERANCES[torch.float32])


def test_opcheck():
    x, r = torch.randn(5, 40, dtype=torch.float16), torch.randn(5, 40, dtype=torch.float16)
    torch.library.opcheck(op, (x, r, torch.rand(40, dtype=torch.float16), 1e-6))
