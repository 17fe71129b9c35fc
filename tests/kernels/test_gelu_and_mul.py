"""gelu_and_mul (native, exact and tanh) against the pure-torch reference."""

import pytest
import torch

from tests.kernels.activation_cases import ROWS, WIDTHS, check_3d, check_gated
from tests.utils import DTYPES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.gelu_and_mul.default


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(approximate, dtype, width, rows, strided):
    check_gated(op, reference.gelu_and_mul, dtype, rows, width, strided, approximate)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_3d(approximate):
    check_3d(op, reference.gelu_and_mul, approximate)


def test_opcheck():
    x = torch.randn(3, 64, dtype=torch.float16)
    torch.library.opcheck(op, (torch.empty(3, 32, dtype=torch.float16), x, "tanh"))
