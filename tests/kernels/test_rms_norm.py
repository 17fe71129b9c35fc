"""rms_norm (native) against the pure-torch reference."""

import pytest
import torch

from tests.utils import DTYPES, TOLERANCES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.rms_norm.default
HIDDEN_SIZES = [8, 768, 769, 5120, 5125, 20000]  # 20000: beyond the kernel's stack row buffer
ROWS = [1, 7, 83]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", HIDDEN_SIZES)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("with_weight", [True, False])
def test_matches_reference(dtype, hidden, rows, with_weight):
    x = torch.randn(rows, hidden).to(dtype) * 3
    w = (torch.rand(hidden) + 0.5).to(dtype) if with_weight else None
    ref = torch.empty_like(x)
    reference.rms_norm(ref, x, w, 1e-6)
    out = torch.full_like(x, float("nan"))
    op(out, x, w, 1e-6)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_rows_and_3d(dtype):
    # q/k-norm shape: [tokens, heads, head_dim] slices of a packed qkv.
    qkv = torch.randn(9, 3 * 4 * 64).to(dtype)
    q = qkv[:, :256].view(9, 4, 64)
    w = torch.rand(64).to(dtype)
    ref = torch.empty(9, 4, 64, dtype=dtype)
    reference.rms_norm(ref, q, w, 1e-5)
    wide = torch.full((9, 4 * 64 * 2), float("nan"), dtype=dtype)
    out = wide[:, :256].view(9, 4, 64)
    op(out, q, w, 1e-5)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])
    assert wide[:, 256:].isnan().all()


def test_in_place():
    x = torch.randn(5, 300)
    ref = torch.empty_like(x)
    reference.rms_norm(ref, x, None, 1e-6)
    op(x, x, None, 1e-6)
    torch.testing.assert_close(x, ref, **TOLERANCES[torch.float32])


def test_empty():
    op(torch.empty(0, 16), torch.empty(0, 16), torch.ones(16), 1e-6)


def test_opcheck():
    x = torch.randn(7, 96, dtype=torch.bfloat16)
    torch.library.opcheck(op, (torch.empty_like(x), x, torch.rand(96, dtype=torch.bfloat16), 1e-5))
    torch.library.opcheck(op, (torch.empty_like(x), x, None, 1e-5))
