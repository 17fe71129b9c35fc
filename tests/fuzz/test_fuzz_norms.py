"""rms_norm and fused_add_rms_norm, fuzzed: any rank, hidden sizes off every vector
width, empty batches, padded and broadcast rows, with and without weight, epsilon 0."""

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, OUTPUT_LAYOUTS, Maker, float_dtypes, seeds

EPSILONS = st.sampled_from([1e-6, 1e-5, 0.0, 0.1])


@st.composite
def shapes(draw, small: bool):
    lead = draw(st.lists(st.integers(1, 3 if small else 6), max_size=2 if small else 3))
    if lead and draw(st.integers(0, 4)) == 0:  # an empty batch (one empty dimension: see
        lead[draw(st.integers(0, len(lead) - 1))] = 0  # Maker.in_layout)
    hidden = draw(st.integers(1, 100) | st.sampled_from([16, 64, 255, 769, 1024 + 7]))
    return lead + [hidden]


@st.composite
def rms_norm_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype, shape = draw(float_dtypes), draw(shapes(small))
    x = m.input(
        shape, dtype, draw(st.sampled_from(INPUT_LAYOUTS)), scale=draw(st.sampled_from([1, 30]))
    )
    weight = m.input(shape[-1:], dtype) if draw(st.booleans()) else None
    out = m.output(shape, dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)))
    return Case("rms_norm", [out, x, weight, draw(EPSILONS)], outputs=(0,))


@st.composite
def fused_add_rms_norm_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype, shape = draw(float_dtypes), draw(shapes(small))
    # Both are written: no broadcast rows.
    x = m.input(shape, dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)), scale=3)
    residual = m.input(shape, dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)), scale=3)
    weight = m.input(shape[-1:], dtype) if draw(st.booleans()) else None
    return Case("fused_add_rms_norm", [x, residual, weight, draw(EPSILONS)], outputs=(0, 1))


CASES = {"rms_norm": rms_norm_cases, "fused_add_rms_norm": fused_add_rms_norm_cases}


@pytest.mark.parametrize("op", CASES)
@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(op, provider):
    fuzz(
        CASES[op](small=provider == "triton"),
        lambda case: assert_agrees_with_reference(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("op", CASES)
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(op, provider):
    fuzz(
        CASES[op](small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        NONFINITE[provider],
    )


def three_level_rows(i: int, name: str):
    """A 4-D view padded in two leading dimensions: three levels of row strides."""

    def mutate(draw, case):
        t = case.args[i]
        buffer = torch.zeros(2 + 1, 3 + 1, 2 + 1, t.shape[-1], dtype=t.dtype)
        view = buffer[:2, :3, :2]
        case.args[i] = view
        other = 1 - i  # the call's other tensor (out, residual), contiguous, same shape
        case.args[other] = torch.zeros(view.shape, dtype=case.args[other].dtype)
        return Broken(case, name, mut.shape_text(view), f"{name} with three row levels")

    return mutate


def scalar_input(draw, case):
    case.args[0] = case.args[0].new_ones(())
    case.args[1] = case.args[1].new_ones(())
    case.args[2] = None
    return Broken(case, "input", "at least 1 dimension", "0-dim input")


def shared_memory(draw, case):
    """fused_add_rms_norm's input and residual one tensor, or overlapping views one element
    apart (both are written)."""
    x = case.args[0]
    if draw(st.booleans()):
        case.args[1] = x
    else:
        assume(x.numel() >= 2)
        buffer = torch.randn(x.numel() + 1, dtype=x.dtype)
        case.args[0], case.args[1] = buffer[:-1].view(x.shape), buffer[1:].view(x.shape)
    return Broken(case, "residual", "share memory", "input and residual overlapping")


def _norm_mutations(other: tuple[int, str], main: tuple[int, str]) -> dict:
    """Mutations of both ops: `main` is (position, name) of input, `other` of the other
    tensor (out, residual)."""
    (o, other_name), (i, main_name) = other, main
    return {
        f"{other_name} dtype": mut.wrong_dtype(o, other_name),
        "input dtype": mut.wrong_dtype(i, main_name, mut.NON_FLOAT_DTYPES),
        f"{other_name} shape": mut.resized(o, other_name, -1),
        f"{other_name} rank": mut.extra_leading_dim(o, other_name),
        f"{other_name} stride": mut.strided_last_dim(o, other_name),
        "input stride": mut.strided_last_dim(i, main_name),
        f"{other_name} meta": mut.on_meta(o, other_name),
        "input three levels": three_level_rows(i, main_name),
        "weight dtype": mut.wrong_dtype(2, "weight"),
        "weight size": mut.resized(2, "weight", 0),
        "weight rank": mut.extra_leading_dim(2, "weight"),
        "weight stride": mut.non_contiguous(2, "weight"),
        "weight meta": mut.on_meta(2, "weight"),
        "epsilon": mut.bad_scalar(3, "epsilon", mut.NEGATIVE_OR_NAN),
        "0-dim input": scalar_input,
    }


MUTATIONS = {
    "rms_norm": _norm_mutations(other=(0, "out"), main=(1, "input")),
    "fused_add_rms_norm": {
        **_norm_mutations(other=(1, "residual"), main=(0, "input")),
        "overlap": shared_memory,
    },
}


@pytest.mark.parametrize("op,how", [(op, how) for op in MUTATIONS for how in MUTATIONS[op]])
def test_rejects_bad_input_alike(op, how):
    fuzz(mut.broken_cases(CASES[op](), MUTATIONS[op][how]), assert_rejected_alike, INVALID)
