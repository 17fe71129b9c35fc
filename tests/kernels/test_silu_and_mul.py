"""silu_and_mul (native) against the pure-torch reference."""

import pytest
import torch

from tests.kernels.activation_cases import ROWS, WIDTHS, check_3d, check_gated
from tests.utils import DTYPES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.silu_and_mul.default


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(dtype, width, rows, strided):
    check_gated(op, reference.silu_and_mul, dtype, rows, width, strided)


def test_3d():
    check_3d(op, reference.silu_and_mul)


def test_extreme_inputs():
    x = torch.tensor([[-1000.0, -20.0, 0.0, 20.0, 1000.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    out, ref = torch.empty(1, 5), torch.empty(1, 5)
    op(out, x)
    reference.silu_and_mul(ref, x)
    torch.testing.assert_close(out, ref)


def test_opcheck():
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    torch.library.opcheck(op, (torch.empty(3, 32, dtype=torch.bfloat16), x))
