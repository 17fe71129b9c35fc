"""silu_and_mul and gelu_and_mul (both approximations), fuzzed: any rank, odd halves,
empty batches, padded and broadcast rows, every dtype."""

import pytest
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, OUTPUT_LAYOUTS, Maker, float_dtypes, seeds

OPS = ("silu_and_mul", "gelu_and_mul")


@st.composite
def gated_cases(draw, op, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    lead = draw(st.lists(st.integers(1, 3 if small else 6), max_size=2 if small else 3))
    if lead and draw(st.integers(0, 4)) == 0:  # an empty batch
        lead[draw(st.integers(0, len(lead) - 1))] = 0
    d = draw(st.integers(0, 80) | st.sampled_from([8, 16, 513, 1024 + 3]))
    x = m.input(lead + [2 * d], dtype, draw(st.sampled_from(INPUT_LAYOUTS)), scale=4)
    out = m.output(lead + [d], dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)))
    args = [out, x] + ([draw(st.sampled_from(["none", "tanh"]))] if op == "gelu_and_mul" else [])
    return Case(op, args, outputs=(0,))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(op, provider):
    fuzz(
        gated_cases(op, small=provider == "triton"),
        lambda case: assert_agrees_with_reference(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(op, provider):
    fuzz(
        gated_cases(op, small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        NONFINITE[provider],
    )


def odd_width(draw, case):
    x = case.args[1]
    assume(x.shape[-1] > 0)
    case.args[1] = x = x[..., :-1]
    return Broken(case, "input", f"got {x.shape[-1]}", "odd input width")


def scalar_input(draw, case):
    case.args[0], case.args[1] = case.args[0].new_ones(()), case.args[1].new_ones(())
    return Broken(case, "input", "at least 1 dimension", "0-dim input")


MUTATIONS = {
    "out dtype": mut.wrong_dtype(0, "out"),
    "input dtype": mut.wrong_dtype(1, "input", mut.NON_FLOAT_DTYPES),
    "out shape": mut.resized(0, "out", -1),
    "out rank": mut.extra_leading_dim(0, "out"),
    # The message names the out shape that input asks for.
    "input rank": mut.extra_leading_dim(
        1, "input", lambda x: str(list(x.shape[:-1]) + [x.shape[-1] // 2])
    ),
    "odd width": odd_width,
    "out stride": mut.strided_last_dim(0, "out"),
    "input stride": mut.strided_last_dim(1, "input"),
    "out meta": mut.on_meta(0, "out"),
    "0-dim input": scalar_input,
}
GELU_MUTATIONS = {
    **MUTATIONS,
    "approximate": mut.bad_scalar(
        2, "approximate", [("fast", "'fast'"), ("", "''"), ("None", "'None'"), ("TANH", "'TANH'")]
    ),
}


@pytest.mark.parametrize(
    "op,how",
    [("silu_and_mul", how) for how in MUTATIONS]
    + [("gelu_and_mul", how) for how in GELU_MUTATIONS],
)
def test_rejects_bad_input_alike(op, how):
    mutations = GELU_MUTATIONS if op == "gelu_and_mul" else MUTATIONS
    fuzz(mut.broken_cases(gated_cases(op), mutations[how]), assert_rejected_alike, INVALID)
