"""topk_softmax, fuzzed: k from 1 to every expert, expert counts off every vector width,
no rows, padded and broadcast rows, with and without renormalisation, every dtype."""

import pytest
import torch
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import (
    Broken,
    Case,
    assert_rejected_alike,
    assert_same_nonfinite_and_close,
    assert_untouched_padding,
    run_with_reference,
)
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, Maker, float_dtypes, seeds


@st.composite
def topk_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    rows = draw(st.integers(0, 4 if small else 12))
    # At most 256 experts: distinct multiples of 1/4 below 64 are exact in bf16, so the
    # top k is unique (ties may be broken either way).
    experts = draw(st.integers(1, 64 if small else 256))
    k = draw(st.integers(1, min(experts, 8)) | st.just(experts))
    logits = (
        torch.stack([torch.randperm(experts, generator=m.gen) for _ in range(rows)])
        if rows
        else torch.empty(0, experts)
    )
    gating = (logits.float() / 4).to(dtype)
    m.plant_nonfinite(gating)
    gating = m.in_layout(gating, draw(st.sampled_from(INPUT_LAYOUTS)))
    weights = torch.full((rows, k), float("nan"))
    ids = torch.full((rows, k), -1, dtype=torch.int32)
    return Case("topk_softmax", [weights, ids, gating, draw(st.booleans())], outputs=(0, 1))


def assert_topk_agrees(provider: str, case: Case) -> None:
    ref = run_with_reference(provider, case)
    what = f"{provider} topk_softmax"
    assert_same_nonfinite_and_close(
        case.args[0], ref[0], f"{what} weights", dict(atol=1e-6, rtol=1e-5)
    )
    # An id is defined where its weight is finite and > 0 (softmax of -inf ties at 0).
    defined = torch.isfinite(ref[0]) & (ref[0] > 0)
    assert torch.equal(case.args[1][defined], ref[1][defined]), (
        f"{what} ids {case.args[1].tolist()} != reference {ref[1].tolist()}"
    )
    assert_untouched_padding(provider, case)


@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(provider):
    fuzz(
        topk_cases(small=provider == "triton"),
        lambda case: assert_topk_agrees(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(provider):
    fuzz(
        topk_cases(small=provider == "triton", nonfinite=True),
        lambda case: assert_topk_agrees(provider, case),
        NONFINITE[provider],
    )


def bad_k(draw, case):
    experts, rows = case.args[2].shape[1], case.args[2].shape[0]
    k = draw(st.sampled_from([0, experts + 1]))
    case.args[0] = torch.empty(rows, k)
    case.args[1] = torch.empty(rows, k, dtype=torch.int32)
    return Broken(case, "k (topk_weights.size(1))", f"got {k}", f"k = {k}")


def flat(i: int, name: str):
    def mutate(draw, case):
        case.args[i] = t = case.args[i].flatten()
        return Broken(case, name, mut.shape_text(t), f"1-D {name}")

    return mutate


MUTATIONS = {
    "weights rank": mut.extra_leading_dim(0, "topk_weights"),
    "ids 1-D": flat(1, "topk_ids"),
    "gating rank": mut.extra_leading_dim(2, "gating_output"),
    "weights meta": mut.on_meta(0, "topk_weights"),
    "ids meta": mut.on_meta(1, "topk_ids"),
    "gating dtype": mut.wrong_dtype(2, "gating_output", mut.NON_FLOAT_DTYPES),
    "weights dtype": mut.wrong_dtype(0, "topk_weights"),
    "ids dtype": mut.wrong_dtype(1, "topk_ids"),
    "gating stride": mut.strided_last_dim(2, "gating_output"),
    "weights strides": mut.non_contiguous(0, "topk_weights"),
    "ids strides": mut.non_contiguous(1, "topk_ids"),
    "weights rows": mut.resized(0, "topk_weights", 0),
    "ids shape": mut.resized(1, "topk_ids", 1),
    "k": bad_k,
}


@pytest.mark.parametrize("how", MUTATIONS)
def test_rejects_bad_input_alike(how):
    fuzz(mut.broken_cases(topk_cases(), MUTATIONS[how]), assert_rejected_alike, INVALID)
