"""topk_softmax (native) against the pure-torch reference."""

import pytest
import torch

from tests.utils import DTYPES
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.topk_softmax.default


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "rows,experts,k", [(1, 8, 2), (33, 64, 6), (7, 128, 8), (5, 3, 3), (9, 60, 1)]
)
@pytest.mark.parametrize("renormalize", [False, True])
def test_matches_reference(dtype, rows, experts, k, renormalize):
    # Distinct values, so that the top-k set is unambiguous in every dtype.
    gating = (torch.stack([torch.randperm(experts) for _ in range(rows)]).float() / 4).to(dtype)
    w, ids = torch.empty(rows, k), torch.empty(rows, k, dtype=torch.int32)
    w_ref, ids_ref = torch.empty_like(w), torch.empty_like(ids)
    reference.topk_softmax(w_ref, ids_ref, gating, renormalize)
    op(w, ids, gating, renormalize)
    assert torch.equal(ids, ids_ref)
    torch.testing.assert_close(w, w_ref, atol=1e-6, rtol=1e-5)


def test_ties_pick_lower_index_first():
    gating = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]])
    w, ids = torch.empty(1, 2), torch.empty(1, 2, dtype=torch.int32)
    op(w, ids, gating, True)
    assert ids.tolist() == [[1, 2]]
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5]]))


def test_strided_gating():
    gating = torch.randn(10, 70)[:, :64]
    w, ids = torch.empty(10, 4), torch.empty(10, 4, dtype=torch.int32)
    w_ref, ids_ref = torch.empty_like(w), torch.empty_like(ids)
    reference.topk_softmax(w_ref, ids_ref, gating, False)
    op(w, ids, gating, False)
    assert torch.equal(ids, ids_ref)
    torch.testing.assert_close(w, w_ref)


def test_opcheck():
    gating = torch.randn(5, 16)
    torch.library.opcheck(
        op, (torch.empty(5, 2), torch.empty(5, 2, dtype=torch.int32), gating, True)
    )
