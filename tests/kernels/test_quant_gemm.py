"""quant_gemm (native) against the pure-torch reference, over awkward M/N/K, every x
dtype, both code widths, every group size, fp16/fp32 scales, with and without mins and
bias, strided x and out; bad inputs get the same message from the native op and from
the torch reference."""

import pytest
import torch

from tests.utils import assert_within_term_bound, quantized_weight
from vllm_forge.ops import reference
from vllm_forge.quant.activations import quantize_x_int8
from vllm_forge.quant.format import GROUP_SIZES

op = torch.ops.vllm_forge.quant_gemm.default

# M: decode (1), the direct path's edge (4, 5), small batches (16, 17), prefill panels (300).
SHAPES = [
    (1, 7, 100),
    (3, 33, 256),
    (4, 5, 48),
    (5, 64, 96),
    (16, 9, 512),
    (17, 31, 64),
    (300, 40, 160),
    (2, 1, 33),
]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Relative to sum_k |x| |W| (the size of the terms, not of their sum): fp32 sums; bf16 W
# (the bf16 strip / panel) and the rounding of the output.
REL_TOL = {torch.float32: 2e-6, torch.bfloat16: 2e-2, torch.float16: 2e-3}


# With quantize_x: fp32 sums of the same products (int32 per block on the VNNI path), so
# only the fp32 and output rounding (one ulp apart at most), inside REL_TOL's bound.
INT8_X_TOL = {torch.float32: 2e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}


def check_against_reference(x, p, bias, out=None, quantize_x=False):
    dtype = x.dtype
    m, n = x.shape[0], p.out_features
    args = (p.qweight, p.scales, p.mins, bias, p.bits, p.group_size, quantize_x)
    ref = torch.empty(m, n, dtype=dtype)
    reference.quant_gemm(ref, x, *args)
    if out is None:
        out = torch.full((m, n), float("nan"), dtype=dtype)
    op(out, x, *args)
    tol = INT8_X_TOL if quantize_x else REL_TOL
    assert_within_term_bound(out, ref, x, p, bias, tol[dtype])
    return out


@pytest.mark.parametrize("quantize_x", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_reference(dtype, bits, m, n, k, quantize_x):
    for group, with_mins, scale_dtype in [
        (32, True, torch.float16),
        (16, False, torch.float32),
        (128 if not quantize_x else 256, True, torch.float32),
    ]:
        p = quantized_weight(n, k, bits, group, with_mins, scale_dtype, seed=m * 1000 + n)
        x = (torch.randn(m, k) * 2).to(dtype)
        bias = torch.randn(n).to(dtype) if with_mins else None
        check_against_reference(x, p, bias, quantize_x=quantize_x)


@pytest.mark.parametrize("group", GROUP_SIZES)
@pytest.mark.parametrize("bits", [4, 8])
def test_every_group_size(group, bits):
    for m in (1, 8, 40):
        p = quantized_weight(12, 300, bits, group, True, torch.float16, seed=group)
        check_against_reference(torch.randn(m, 300), p, None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 9, 64])
def test_strided_x_and_out(dtype, m):
    p = quantized_weight(20, 96, 4, 32, True, torch.float16)
    x = torch.randn(m, 3 * 96).to(dtype)[:, 96:192]  # row stride 288
    wide = torch.full((m, 50), float("nan"), dtype=dtype)
    out = wide[:, 5:25]
    check_against_reference(x, p, torch.randn(20).to(dtype), out=out)
    assert wide[:, :5].isnan().all() and wide[:, 25:].isnan().all()


@pytest.mark.parametrize("group", [32, 64, 128, 256])
@pytest.mark.parametrize("k", [64, 330, 576, 1000])
def test_bf16_decode_is_exact_up_to_output_rounding(group, k):
    # bf16 x at decode sizes (m <= 4): W is never rounded to bf16 (the codes are exact in
    # bf16, the scales applied in fp32), so the error is the bf16 rounding of the output
    # plus fp32 sums: much tighter than REL_TOL's bf16-weight bound. k = 330 and 1000
    # end in a lone 32-code block and in a partial group.
    for m, with_mins, scale_dtype in [
        (1, True, torch.float16),
        (2, False, torch.float32),
        (4, True, torch.float32),
        (3, False, torch.float16),
    ]:
        p = quantized_weight(37, k, 4, group, with_mins, scale_dtype, seed=k + group + m)
        x = torch.randn(m, k).to(torch.bfloat16)
        out = torch.empty(m, 37, dtype=torch.bfloat16)
        op(out, x, p.qweight, p.scales, p.mins, None, 4, group)
        w64 = p.dequantize().double()
        exact = x.double() @ w64.t()
        size = x.double().abs() @ w64.abs().t()
        err = (out.double() - exact).abs()
        assert (err <= 2.0**-8 * exact.abs() + 1e-5 * size).all(), err.max()


def test_fp32_is_exact_up_to_the_order_of_sums():
    # fp32 x: W = s q + m exactly, fp32 sums: agrees with a float64 computation to fp32
    # rounding of the sums, at every path (direct, strip, panels).
    p = quantized_weight(64, 1024, 4, 32, True, torch.float16)
    w64 = p.dequantize().double()
    for m in (1, 4, 16, 100):
        x = torch.randn(m, 1024)
        out = torch.empty(m, 64)
        op(out, x, p.qweight, p.scales, p.mins, None, 4, 32)
        exact = x.double() @ w64.t()
        size = x.double().abs() @ w64.abs().t()
        assert ((out.double() - exact).abs() <= 1e-6 * size).all()


def test_nan_and_inf_propagate_to_their_row():
    p = quantized_weight(10, 64, 8, 32, False, torch.float16)
    for m in (1, 6, 50):
        x = torch.randn(m, 64)
        x[0, 3] = float("nan")
        out = torch.empty(m, 10)
        op(out, x, p.qweight, p.scales, p.mins, None, 8, 32)
        assert out[0].isnan().all() and not out[1:].isnan().any()


# ---- quantize_x: x rounded to int8 per block first (quant/activations.py) ----------------


def test_quantize_x_int8_rounds_half_to_even_per_block():
    # One block of 32 with max 127: the codes are x itself rounded, ties to even.
    x = torch.zeros(1, 40)
    x[0, :6] = torch.tensor([127.0, -63.5, 0.5, 1.5, -2.5, 3.25])
    x[0, 32:34] = torch.tensor([0.0, -0.0])  # an all-zero block: codes 0, no NaN
    got = quantize_x_int8(x, 32)
    assert got[0, :6].tolist() == [127.0, -64.0, 0.0, 2.0, -2.0, 3.0]
    assert (got[0, 6:] == 0).all()
    # group 16: blocks of 16, each with its own scale
    y = torch.cat([torch.full((1, 16), 1.0), torch.full((1, 16), 100.0)], 1)
    y[0, 0], y[0, 16] = 0.3, 0.3
    got = quantize_x_int8(y, 16)
    assert got[0, 0] == pytest.approx(round(0.3 * 127) / 127, rel=1e-6)
    assert got[0, 16] == 0.0  # 0.3 * 127 / 100 rounds to 0


@pytest.mark.parametrize("group", [16, 32, 128])
def test_quantize_x_int8_error_is_half_a_step(group):
    x = torch.randn(5, 300) * torch.logspace(-3, 3, 300)
    got = quantize_x_int8(x, group)
    block = min(group, 32)
    pad = torch.nn.functional.pad(x, (0, 320 - 300)).view(5, -1, block).abs().amax(-1)
    step = (pad / 127).repeat_interleave(block, 1)[:, :300]
    assert ((got - x).abs() <= step * (0.5 + 1e-6)).all()


@pytest.mark.parametrize("m", [1, 8, 19])
def test_int8_x_is_the_exact_product_of_rounded_x(m):
    # The int8 path's answer is the exact path's on x' = quantize_x_int8(x): fp32 x'.
    p = quantized_weight(40, 700, 4, 32, True, torch.float16, seed=m)
    x = torch.randn(m, 700).to(torch.bfloat16)
    got = torch.empty(m, 40)
    op(got, x.float(), p.qweight, p.scales, p.mins, None, 4, 32, True)
    exact = torch.empty(m, 40)
    op(exact, quantize_x_int8(x, 32).contiguous(), p.qweight, p.scales, p.mins, None, 4, 32)
    assert_within_term_bound(got, exact, x, p, None, 2e-6)


def test_int8_x_nonfinite_makes_its_row_nan():
    p = quantized_weight(20, 96, 4, 32, True, torch.float16)
    for value in (float("inf"), float("nan")):
        for m in (1, 5, 12):
            x = torch.randn(m, 96).to(torch.bfloat16)
            x[0, 40] = value
            out = torch.empty(m, 20, dtype=torch.bfloat16)
            op(out, x, p.qweight, p.scales, p.mins, None, 4, 32, True)
            assert out[0].isnan().all() and out[1:].isfinite().all()


def test_int8_x_empty_and_k_zero():
    p = quantized_weight(8, 64, 4, 32, True, torch.float16)
    op(torch.empty(0, 8), torch.empty(0, 64), p.qweight, p.scales, p.mins, None, 4, 32, True)
    out = torch.full((3, 8), float("nan"))
    bias = torch.randn(8)
    empty_q = torch.zeros(1, 0, dtype=torch.int8)
    op(out, torch.empty(3, 0), empty_q, torch.ones(1, 0, 16), None, bias, 8, 32, True)
    assert torch.equal(out, bias.expand(3, 8))


def test_int8_x_opcheck():
    for bits, group, with_mins in ((4, 32, True), (8, 16, False)):
        p = quantized_weight(24, 96, bits, group, with_mins, torch.float16)
        for m, dtype in ((1, torch.bfloat16), (40, torch.float32)):
            torch.library.opcheck(
                op,
                (
                    torch.empty(m, 24, dtype=dtype),
                    torch.randn(m, 96).to(dtype),
                    p.qweight,
                    p.scales,
                    p.mins,
                    None,
                    bits,
                    group,
                    True,
                ),
            )


def test_empty():
    p = quantized_weight(8, 64, 4, 32, True, torch.float16)
    op(torch.empty(0, 8), torch.empty(0, 64), p.qweight, p.scales, p.mins, None, 4, 32)
    op(torch.empty(3, 0), torch.randn(3, 64), p.qweight[:0], p.scales[:0], p.mins[:0], None, 4, 32)


def test_opcheck():
    p = quantized_weight(24, 96, 4, 32, True, torch.float16)
    for m, dtype in ((1, torch.bfloat16), (40, torch.float32)):
        x = torch.randn(m, 96).to(dtype)
        torch.library.opcheck(
            op,
            (
                torch.empty(m, 24, dtype=dtype),
                x,
                p.qweight,
                p.scales,
                p.mins,
                torch.randn(24).to(dtype),
                4,
                32,
            ),
        )
    q8 = quantized_weight(24, 96, 8, 16, False, torch.float32)
    torch.library.opcheck(
        op, (torch.empty(3, 24), torch.randn(3, 96), q8.qweight, q8.scales, None, None, 8, 16)
    )


# Bad inputs: the same RuntimeError and message from every provider.
def args():
    p = quantized_weight(6, 64, 4, 32, True, torch.float16)
    return dict(
        out=torch.empty(3, 6),
        x=torch.randn(3, 64),
        qweight=p.qweight,
        scales=p.scales,
        mins=p.mins,
        bias=torch.randn(6),
        bits=4,
        group_size=32,
    )


def replace(**changes):
    def mutate(a):
        for name, fn in changes.items():
            a[name] = fn(a[name], a)

    return mutate


BAD = {
    "bits": (replace(bits=lambda v, a: 3), r"quant_gemm: bits must be 4 or 8, got 3"),
    "group": (
        replace(group_size=lambda v, a: 48),
        r"group_size must be 16, 32, 64, 128 or 256, got 48",
    ),
    "x_dim": (replace(x=lambda v, a: v[0]), r"x must be a 2-D tensor, got shape \[64\]"),
    "x_dtype": (
        replace(x=lambda v, a: v.int()),
        r"x must have dtype float32, bfloat16 or float16, got Int",
    ),
    "x_stride": (
        replace(x=lambda v, a: v.repeat_interleave(2, 1)[:, ::2]),
        r"x must have a contiguous last dimension",
    ),
    "qweight_dtype4": (
        replace(qweight=lambda v, a: v.to(torch.int8)),
        r"qweight must have dtype uint8 for bits=4 \(two codes per byte\), got Char",
    ),
    "qweight_dtype8": (
        replace(bits=lambda v, a: 8),
        r"qweight must have dtype int8 for bits=8 \(one code per weight\), got Byte",
    ),
    # GPTQ's int32 packing handed over unconverted
    "qweight_gptq": (
        replace(qweight=lambda v, a: torch.zeros(1, 8, dtype=torch.int32)),
        r"qweight must have dtype uint8 for bits=4",
    ),
    "qweight_shape": (
        replace(qweight=lambda v, a: v[:, :16]),
        r"qweight must have shape \[1, 512\] \(tiles of 16 of N=6 \(out.size\(1\)\), bytes per tile for K=64 \(x.size\(1\)\) and bits=4\), got \[1, 16\]",
    ),
    "scales_dtype": (
        replace(scales=lambda v, a: v.bfloat16(), mins=lambda v, a: v.bfloat16()),
        r"scales must have dtype float32 or float16, got BFloat16",
    ),
    "scales_shape": (
        replace(scales=lambda v, a: v[:, :1]),
        r"scales must have shape \[1, 2, 16\] \(tiles, ceil\(K / group_size\) for K=64, group_size=32, 16\), got \[1, 1, 16\]",
    ),
    "scales_group_mismatch": (
        replace(group_size=lambda v, a: 16),
        r"scales must have shape \[1, 4, 16\]",
    ),
    "mins_dtype": (
        replace(mins=lambda v, a: v.float()),
        r"mins must have the dtype of scales \(Half\), got Float",
    ),
    "mins_shape": (
        replace(mins=lambda v, a: v[:, :1]),
        r"mins must have the shape and strides of scales \[1, 2, 16\]",
    ),
    "bias_shape": (
        replace(bias=lambda v, a: v[:5]),
        r"bias must have shape \[6\] \(N = out.size\(1\)\), got \[5\]",
    ),
    "bias_dtype": (
        replace(bias=lambda v, a: v.half()),
        r"bias must have the dtype of x \(Float\), got Half",
    ),
    "out_shape": (
        replace(out=lambda v, a: v[:2]),
        r"out must have shape \[3, N\] \(x.size\(0\), N\), got \[2, 6\]",
    ),
    "out_dtype": (
        replace(out=lambda v, a: v.bfloat16()),
        r"out must have the dtype of x \(Float\), got BFloat16",
    ),
    "out_dim": (
        replace(out=lambda v, a: v.flatten()),
        r"out must be a 2-D tensor, got shape \[18\]",
    ),
}

PROVIDERS = {"native": op, "torch": reference.quant_gemm}


@pytest.mark.cpu_only
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", BAD)
def test_bad_input(case, provider):
    mutate, message = BAD[case]
    a = args()
    mutate(a)
    with pytest.raises(RuntimeError, match=message):
        PROVIDERS[provider](**a)


@pytest.mark.cpu_only
@pytest.mark.parametrize("provider", PROVIDERS)
def test_out_overlapping_x(provider):
    a = args()
    buf = torch.randn(3, 64)
    a.update(x=buf, out=buf[:, :6])
    with pytest.raises(RuntimeError, match="out must not share memory with x"):
        PROVIDERS[provider](**a)
