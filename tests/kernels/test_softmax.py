"""softmax (native) against the pure-torch reference."""

import pytest
import torch

from tests.kernels.softmax_cases import SHAPES, check
from tests.utils import DTYPES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.softmax.default


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [False, True])
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(dtype, shape, temperature, strided):
    check(op, reference.softmax, dtype, shape, temperature, strided)


def test_rows_sum_to_one_with_extreme_logits():
    x = torch.tensor([[1e4, -1e4, 0.0, 1e4], [-50.0, -50.0, -50.0, -50.0]])
    out = torch.empty_like(x)
    op(out, x, None)
    torch.testing.assert_close(out.sum(-1), torch.ones(2))
    torch.testing.assert_close(out[1], torch.full((4,), 0.25))


def test_opcheck():
    x = torch.randn(6, 50)
    torch.library.opcheck(op, (torch.empty_like(x), x, torch.rand(6) + 0.5))
    torch.library.opcheck(op, (torch.empty_like(x), x, None))
