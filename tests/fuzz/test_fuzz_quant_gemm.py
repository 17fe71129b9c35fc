"""quant_gemm, fuzzed: int4 and int8 codes, every group size, fp16/fp32 scales, with and
without mins and bias, K off every 32-weight block (and K = 0), M across the decode,
small-batch and tl.dot paths, N = 0, M = 0, padded and broadcast x, padded weights."""

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import (
    Broken,
    Case,
    assert_rejected_alike,
    assert_same_nonfinite,
    assert_untouched_padding,
    run_with_reference,
)
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, OUTPUT_LAYOUTS, Maker, float_dtypes, seeds
from tests.utils import quantized_weight
from vllm_forge.quant.format import (
    GROUP_SIZES,
    TILE_N,
    TiledWeight,
    num_groups,
    num_tiles,
    tiled_columns,
)

# Relative to sum_k |x| |W| (the size of the terms, not of their sum), the larger of
# tests/kernels/test_quant_gemm.py's and tests/triton/test_quant_gemm.py's.
REL_TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}
OUT, X, QWEIGHT, SCALES, MINS, BIAS, BITS, GROUP, QUANTIZE_X = range(9)


def weight(m: Maker, n, k, bits, group, with_mins, scale_dtype, padded_rows):
    """(qweight, scales, mins) in the tiled form: RTN-quantised random weights (scales and
    mins contiguous, as the op requires; qweight's tiles optionally padded apart)."""
    tiles, groups, cols = num_tiles(n), num_groups(k, group), tiled_columns(k, bits)
    if n and k:
        p = quantized_weight(n, k, bits, group, with_mins, scale_dtype, seed=m.choice(2**31))
        qweight, scales, mins = p.qweight, p.scales.clone(), p.mins
        mins = None if mins is None else mins.clone()
    else:  # quantize_rtn needs weights: nothing to quantise here
        qweight = torch.zeros(tiles, cols, dtype=torch.uint8 if bits == 4 else torch.int8)
        scales, mins = torch.ones(tiles, groups, TILE_N, dtype=scale_dtype), None
    m.plant_nonfinite(scales)
    if mins is not None:
        m.plant_nonfinite(mins)
    return (m.padded(qweight, leading=0) if padded_rows else qweight), scales, mins


@st.composite
def quant_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype, bits = draw(float_dtypes), draw(st.sampled_from([4, 8]))
    group = draw(st.sampled_from(GROUP_SIZES))
    rows = draw(st.sampled_from([0, 1, 3, 4, 5, 16, 17]) | st.integers(0, 20 if small else 70))
    n = draw(st.integers(0, 40 if small else 100))
    k = draw(st.sampled_from([0, 16, 32, 33, 100, 256]) | st.integers(1, 160 if small else 600))
    with_mins = draw(st.booleans())
    qweight, scales, mins = weight(
        m,
        n,
        k,
        bits,
        group,
        with_mins,
        draw(st.sampled_from([torch.float16, torch.float32])),
        padded_rows=draw(st.booleans()),
    )
    x = m.input([rows, k], dtype, draw(st.sampled_from(INPUT_LAYOUTS)), scale=2)
    bias = m.input([n], dtype) if draw(st.booleans()) else None
    out = m.output([rows, n], dtype, draw(st.sampled_from(OUTPUT_LAYOUTS)))
    quantize_x = draw(st.booleans())
    return Case(
        "quant_gemm", [out, x, qweight, scales, mins, bias, bits, group, quantize_x], outputs=(0,)
    )


def assert_quant_agrees(provider: str, case: Case) -> None:
    """As tests/utils.assert_within_term_bound, where the values are finite."""
    ref = run_with_reference(provider, case)
    out, x, qweight, scales, mins, bias, bits, group, quantize_x = case.args
    finite = assert_same_nonfinite(out, ref[OUT], f"{provider} quant_gemm")
    assert_untouched_padding(provider, case)
    if out.numel() == 0:
        return
    k, n = x.shape[1], out.shape[1]
    tiled = TiledWeight(qweight, scales, mins, bits, group, k, n)
    w = tiled.dequantize() if k else torch.zeros(n, 0)
    size = x.float().abs() @ w.abs().t() + (bias.float().abs() if bias is not None else 0)
    err = (out.float() - ref[OUT].float()).abs()[finite]
    bound = REL_TOL[x.dtype] * size[finite] + torch.finfo(x.dtype).tiny
    assert (err <= bound).all(), (
        f"{provider} quant_gemm: max err {err.max():.3g}, worst ratio {(err / bound).max():.3g}"
    )


@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(provider):
    fuzz(
        quant_cases(small=provider == "triton"),
        lambda case: assert_quant_agrees(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(provider):
    fuzz(
        quant_cases(small=provider == "triton", nonfinite=True),
        lambda case: assert_quant_agrees(provider, case),
        NONFINITE[provider],
    )


def wrong_packing(draw, case):
    """qweight for the other code width, or GPTQ's int32 packing handed over unconverted."""
    q, bits, k = case.args[QWEIGHT], case.args[BITS], case.args[X].shape[1]
    if draw(st.booleans()):
        case.args[QWEIGHT] = q = torch.zeros(q.shape[0], max(1, k // 8), dtype=torch.int32)
    else:
        case.args[BITS] = bits = 12 - bits  # 4 <-> 8: the codes' dtype is now wrong
    expected = "uint8 for bits=4" if bits == 4 else "int8 for bits=8"
    return Broken(case, "qweight", f"must have dtype {expected}", "wrong packing")


def other_group_size(draw, case):
    k, group = case.args[X].shape[1], case.args[GROUP]
    new = draw(st.sampled_from([g for g in GROUP_SIZES if g != group]))
    assume(num_groups(k, new) != num_groups(k, group))
    case.args[GROUP] = new
    return Broken(case, "scales", f"group_size={new}", f"group_size {group} -> {new}")


def tiled_columns_off(draw, case):
    q = case.args[QWEIGHT]
    cols = q.shape[1] + draw(st.sampled_from([1, 16] + ([-1] if q.shape[1] else [])))
    case.args[QWEIGHT] = q = torch.zeros(q.shape[0], cols, dtype=q.dtype)
    return Broken(case, "qweight", mut.shape_text(q), "qweight columns off")


def out_columns_off_by_a_tile(draw, case):
    """N is out's: 16 more (or fewer) columns need another tile of codes."""
    out = case.args[OUT]
    n = out.shape[1] + (16 if out.shape[1] < 16 or draw(st.booleans()) else -16)
    case.args[OUT] = torch.empty(out.shape[0], n, dtype=out.dtype)
    if case.args[BIAS] is not None:
        case.args[BIAS] = torch.zeros(n, dtype=case.args[BIAS].dtype)
    return Broken(case, "qweight", f"N={n} (out.size(1))", "out columns off by a tile")


def out_overlapping_x(draw, case):
    x, out = case.args[X], case.args[OUT]
    rows, k, n = x.shape[0], x.shape[1], out.shape[1]
    assume(rows and n and k)  # an empty x shares no memory
    buffer = torch.randn(rows, max(k, n), dtype=x.dtype)
    case.args[X], case.args[OUT] = buffer[:, :k], buffer[:, :n]
    return Broken(case, "out", "must not share memory with x", "out overlapping x")


def with_mins(mutation):
    def mutate(draw, case):
        if case.args[MINS] is None:
            case.args[MINS] = torch.zeros_like(case.args[SCALES])
        return mutation(draw, case)

    return mutate


def with_bias(mutation):
    def mutate(draw, case):
        if case.args[BIAS] is None:
            case.args[BIAS] = torch.zeros(case.args[OUT].shape[1], dtype=case.args[X].dtype)
        return mutation(draw, case)

    return mutate


MUTATIONS = {
    "bits": mut.bad_scalar(BITS, "bits", [(3, "got 3"), (0, "got 0"), (16, "got 16")]),
    "group_size": mut.bad_scalar(
        GROUP, "group_size", [(48, "got 48"), (8, "got 8"), (512, "got 512"), (0, "got 0")]
    ),
    "x rank": mut.extra_leading_dim(X, "x"),
    "x dtype": mut.wrong_dtype(X, "x", mut.NON_FLOAT_DTYPES),
    "x stride": mut.strided_last_dim(X, "x"),
    **{
        f"{name} meta": mut.on_meta(i, name)
        for i, name in [(OUT, "out"), (QWEIGHT, "qweight"), (SCALES, "scales")]
    },
    "mins meta": with_mins(mut.on_meta(MINS, "mins")),
    "bias meta": with_bias(mut.on_meta(BIAS, "bias")),
    "qweight rank": mut.extra_leading_dim(QWEIGHT, "qweight"),
    "qweight packing": wrong_packing,
    "qweight columns": tiled_columns_off,
    "qweight stride": mut.strided_last_dim(QWEIGHT, "qweight"),
    "scales rank": mut.extra_leading_dim(SCALES, "scales"),
    "scales dtype": mut.wrong_dtype(SCALES, "scales", (torch.bfloat16, torch.float64, torch.int8)),
    "scales rows": mut.resized(SCALES, "scales", 0),
    "scales groups": mut.resized(SCALES, "scales", 1),
    "scales lanes": mut.resized(SCALES, "scales", 2),
    "group size for scales": other_group_size,
    "scales layout": mut.non_contiguous(SCALES, "scales"),
    "mins dtype": with_mins(mut.wrong_dtype(MINS, "mins")),
    "mins shape": with_mins(mut.resized(MINS, "mins", 1)),
    "bias dtype": with_bias(mut.wrong_dtype(BIAS, "bias")),
    "bias shape": with_bias(mut.resized(BIAS, "bias", 0)),
    "bias rank": with_bias(mut.extra_leading_dim(BIAS, "bias")),
    "out rank": mut.extra_leading_dim(OUT, "out"),
    "out dtype": mut.wrong_dtype(OUT, "out"),
    "out rows": mut.resized(OUT, "out", 0),
    "out cols": out_columns_off_by_a_tile,
    "out stride": mut.strided_last_dim(OUT, "out"),
    "out overlapping x": out_overlapping_x,
}


@pytest.mark.parametrize("how", MUTATIONS)
def test_rejects_bad_input_alike(how):
    fuzz(mut.broken_cases(quant_cases(small=True), MUTATIONS[how]), assert_rejected_alike, INVALID)
