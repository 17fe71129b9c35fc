"""softmax and log_softmax, fuzzed: rows wider than a tile, one column, no rows, padded
and broadcast rows, per-row temperatures, every dtype."""

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, OUTPUT_LAYOUTS, Maker, float_dtypes, seeds

OPS = ("softmax", "log_softmax")


@st.composite
def softmax_cases(draw, op, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    rows = draw(st.integers(0, 4 if small else 9))
    cols = draw(st.integers(1, 100) | st.sampled_from([16, 64, 1000, 2048 + 5]))
    if rows == 0 and draw(st.booleans()):
        cols = 0  # no rows, no columns: legal
    x = m.input(
        [rows, cols],
        dtype,
        draw(st.sampled_from(INPUT_LAYOUTS)),
        scale=draw(st.sampled_from([1, 5, 50])),
    )
    out = m.output([rows, cols], dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)))
    # Temperatures are never poisoned: a non-finite one is a bad input.
    temperature = (torch.rand(rows, generator=m.gen) * 3 + 0.05) if draw(st.booleans()) else None
    return Case(op, [out, x, temperature], outputs=(0,), tolerance=fp32_tolerance(x, temperature))


def fp32_tolerance(x, temperature):
    """Logits / temperature reach ~1000 here: their fp32 rounding (a kernel may multiply by
    1 / temperature) shows in the outputs, log_softmax's x - max - log(sum) most. Allow a
    few ulps of the largest finite scaled logit on top of tests/utils.py's fp32 tolerance."""
    logits = x.float() / (temperature.unsqueeze(1) if temperature is not None else 1)
    finite = logits[torch.isfinite(logits)]
    slack = 4 * torch.finfo(torch.float32).eps * float(finite.abs().max()) if finite.numel() else 0
    return {torch.float32: dict(atol=max(2e-5, slack), rtol=max(2e-5, slack))}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(op, provider):
    fuzz(
        softmax_cases(op, small=provider == "triton"),
        lambda case: assert_agrees_with_reference(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(op, provider):
    fuzz(
        softmax_cases(op, small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        NONFINITE[provider],
    )


def with_temperature(mutation):
    """mutation applied to a temperature of ones, when the case has none."""

    def mutate(draw, case):
        if case.args[2] is None:
            case.args[2] = torch.ones(case.args[1].shape[0])
        return mutation(draw, case)

    return mutate


def bad_temperature_value(draw, case):
    t = case.args[2]
    assume(t.numel() > 0)
    i = draw(st.integers(0, t.numel() - 1))
    value, text = draw(
        st.sampled_from(
            [
                (0.0, "0"),
                (-2.0, "-2"),
                (float("nan"), "nan"),
                (float("inf"), "inf"),
                (-1e-30, "-1e-30"),
            ]
        )
    )
    mut.set_element(case, 2, i, value)
    return Broken(
        case,
        "temperature",
        f"temperature[{i}] must be finite and > 0, got {text}",
        "bad temperature value",
    )


def no_columns(draw, case):
    rows = max(1, case.args[1].shape[0])
    case.args[1] = torch.empty(rows, 0, dtype=case.args[1].dtype)
    case.args[0] = torch.empty(rows, 0, dtype=case.args[0].dtype)
    case.args[2] = None
    return Broken(case, "input", f"[{rows}, 0]", "no columns")


def flat_input(draw, case):
    case.args[1] = x = case.args[1].flatten()
    return Broken(case, "input", mut.shape_text(x), "1-D input")


MUTATIONS = {
    "out dtype": mut.wrong_dtype(0, "out"),
    "input dtype": mut.wrong_dtype(1, "input", mut.NON_FLOAT_DTYPES),
    "out rows": mut.resized(0, "out", 0),
    "out cols": mut.resized(0, "out", 1),
    "input rank": mut.extra_leading_dim(1, "input"),
    "input 1-D": flat_input,
    "out stride": mut.strided_last_dim(0, "out"),
    "input stride": mut.strided_last_dim(1, "input"),
    "out meta": mut.on_meta(0, "out"),
    "no columns": no_columns,
    "temperature dtype": with_temperature(mut.wrong_dtype(2, "temperature")),
    "temperature size": with_temperature(mut.resized(2, "temperature", 0)),
    "temperature rank": with_temperature(mut.extra_leading_dim(2, "temperature")),
    "temperature strides": with_temperature(mut.non_contiguous(2, "temperature")),
    "temperature meta": with_temperature(mut.on_meta(2, "temperature")),
    "temperature value": with_temperature(bad_temperature_value),
}


@pytest.mark.parametrize("op,how", [(op, how) for op in OPS for how in MUTATIONS])
def test_rejects_bad_input_alike(op, how):
    fuzz(mut.broken_cases(softmax_cases(op), MUTATIONS[how]), assert_rejected_alike, INVALID)
