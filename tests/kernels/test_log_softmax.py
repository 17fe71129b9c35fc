"""log_softmax (native) against the pure-torch reference."""

import pytest
import torch

from tests.kernels.softmax_cases import SHAPES, check
from tests.utils import DTYPES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.log_softmax.default


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [False, True])
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(dtype, shape, temperature, strided):
    check(op, reference.log_softmax, dtype, shape, temperature, strided)


def test_opcheck():
    x = torch.randn(6, 50, dtype=torch.bfloat16)
    torch.library.opcheck(op, (torch.empty_like(x), x, torch.rand(6) + 0.5))
