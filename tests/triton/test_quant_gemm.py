"""The Triton quant_gemm against the pure-torch reference: both code widths, group sizes,
fp16/fp32 scales, with and without mins and bias, K not a multiple of 32, odd N, thin
(decode) and tl.dot tiles; bad inputs raise the reference's RuntimeError. Small shapes on
CPU (Triton's interpreter, set up by tests/conftest.py), larger ones on a GPU."""

import pytest
import torch

from tests.utils import DTYPES, assert_within_term_bound, quantized_weight
from vllm_forge import ops
from vllm_forge.ops import reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ON_GPU = DEVICE == "cuda"

# (M, N, K): M=1, 3 take the thin tile, M=17 and 70 tl.dot (70: two row tiles);
# K=48, 100 end inside a 32-weight block, 160 inside a 64-step; N odd, N=70 two column tiles.
SHAPES = [(1, 7, 100), (3, 5, 48), (17, 9, 100), (70, 70, 160)]
if ON_GPU:
    SHAPES += [(1, 4096, 4096), (33, 1000, 1000), (300, 512, 2048)]
# Relative to sum_k |x| |W| (the size of the terms): fp32 sums in another order; for
# bf16/fp16 x on a GPU, W rounded to x's dtype for tl.dot, and the output's rounding.
REL_TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}

# Every test starts with the default provider order (conftest.fresh_choice).
pytestmark = pytest.mark.usefixtures("fresh_choice")


def triton_op():
    fn, why = ops._triton("quant_gemm", DEVICE)
    assert fn is not None, f"Triton cannot serve quant_gemm here: {why}"
    return fn


def on_device(*tensors):
    return [t.to(DEVICE) if isinstance(t, torch.Tensor) else t for t in tensors]


def check(x, p, bias, out=None, fn=None):
    """Run the reference on CPU and the Triton op on DEVICE (into `out`, maybe strided);
    compare with a bound relative to the size of the terms."""
    dtype = x.dtype
    m, n = x.shape[0], p.out_features
    ref = torch.empty(m, n, dtype=dtype)
    reference.quant_gemm(ref, x, p.qweight, p.scales, p.mins, bias, p.bits, p.group_size)
    if out is None:
        out = torch.full((m, n), float("nan"), dtype=dtype)
    out = out.to(DEVICE) if out.is_contiguous() else _strided_like(out)
    (fn or triton_op())(out, *on_device(x, p.qweight, p.scales, p.mins, bias), p.bits, p.group_size)
    assert_within_term_bound(out, ref, x, p, bias, REL_TOL[dtype])
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bits,group,with_mins", [(4, 32, True), (8, 16, False), (4, 256, True)])
def test_quant_gemm_int8_x(dtype, bits, group, with_mins):
    # quantize_x: the reference's int8 rounding of x, then the fp32 kernel on it.
    for m, n, k in ((1, 33, 300), (20, 16, 96)):
        p = quantized_weight(n, k, bits, group, with_mins, torch.float16, seed=m + k)
        x = torch.randn(m, k).to(dtype)
        bias = torch.randn(n).to(dtype) if with_mins else None
        ref = torch.empty(m, n, dtype=dtype)
        reference.quant_gemm(ref, x, p.qweight, p.scales, p.mins, bias, bits, group, True)
        out = torch.empty(m, n, dtype=dtype, device=DEVICE)
        triton_op()(out, *on_device(x, p.qweight, p.scales, p.mins, bias), bits, group, True)
        tol = {torch.float32: 1e-5, torch.bfloat16: 2**-7}[dtype]
        assert_within_term_bound(out, ref, x, p, bias, tol)
    x = torch.randn(2, 96)
    x[1, 7] = float("inf")
    p = quantized_weight(16, 96, 4, 32, True, torch.float16)
    out = torch.empty(2, 16, device=DEVICE)
    triton_op()(out, *on_device(x, p.qweight, p.scales, p.mins, None), 4, 32, True)
    assert out[0].isfinite().all() and out[1].isnan().all()


def _strided_like(t):
    base = torch.full((t.shape[0], t.stride(0)), float("nan"), dtype=t.dtype, device=DEVICE)
    return base[:, : t.shape[1]]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group", [16, 32, 128])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("with_mins", [False, True])
def test_quant_gemm(shape, bits, group, scale_dtype, with_mins):
    m, n, k = shape
    torch.manual_seed(m * 1000 + n + k)
    p = quantized_weight(n, k, bits, group, with_mins, scale_dtype)
    bias = torch.randn(n) if with_mins else None
    check(torch.randn(m, k), p, bias)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 17])
@pytest.mark.parametrize("bits", [4, 8])
def test_quant_gemm_dtypes(dtype, m, bits):
    torch.manual_seed(m + bits)
    p = quantized_weight(31, 96, bits, 32, True, torch.float16, seed=bits)
    check(torch.randn(m, 96).to(dtype), p, torch.randn(31).to(dtype))


@pytest.mark.parametrize("group", [64, 256])
def test_quant_gemm_other_groups(group):
    # 256: one group spans several K steps; the last group is partial (K = 300).
    torch.manual_seed(group)
    p = quantized_weight(6, 300, 4, group, True, torch.float32)
    check(torch.randn(5, 300), p, None)
    check(torch.randn(20, 300), p, torch.randn(6))


@pytest.mark.parametrize("m", [3, 17])
def test_quant_gemm_strided_x_and_out(m):
    torch.manual_seed(m)
    p = quantized_weight(13, 100, 4, 32, True, torch.float16)
    x = torch.randn(m, 140)[:, 20:120]
    out = check(x, p, torch.randn(13), out=torch.empty(m, 40)[:, :13])
    assert out.stride() == (40, 1)


def test_quant_gemm_one_column_and_tiny_k():
    torch.manual_seed(0)
    check(torch.randn(2, 1), quantized_weight(1, 1, 4, 16, True, torch.float32), None)
    check(torch.randn(2, 33), quantized_weight(1, 33, 8, 16, False, torch.float16), torch.randn(1))


def test_quant_gemm_empty():
    fn = triton_op()
    p = quantized_weight(5, 64, 4, 32, True, torch.float16)
    args = on_device(p.qweight, p.scales, p.mins)
    fn(torch.empty(0, 5, device=DEVICE), torch.empty(0, 64, device=DEVICE), *args, None, 4, 32)
    q0, s0 = torch.empty(0, 512, dtype=torch.uint8), torch.empty(0, 2, 16, dtype=torch.float16)
    fn(
        torch.empty(3, 0, device=DEVICE),
        torch.randn(3, 64, device=DEVICE),
        *on_device(q0, s0),
        None,
        None,
        4,
        32,
    )
    # K = 0: the sum is empty, out = bias (or 0).
    q, s = torch.empty(1, 0, dtype=torch.int8), torch.empty(1, 0, 16)
    bias = torch.randn(5)
    out = torch.full((3, 5), float("nan"), device=DEVICE)
    fn(out, torch.empty(3, 0, device=DEVICE), *on_device(q, s, None, bias), 8, 16)
    torch.testing.assert_close(out.cpu(), bias.expand(3, 5))
    fn(out, torch.empty(3, 0, device=DEVICE), *on_device(q, s), None, None, 8, 16)
    assert (out == 0).all()


def test_quant_gemm_opcheck():
    torch.manual_seed(0)
    p = quantized_weight(9, 48, 4, 16, True, torch.float16)
    args = on_device(
        torch.empty(3, 9), torch.randn(3, 48), p.qweight, p.scales, p.mins, torch.randn(9)
    )
    torch.library.opcheck(triton_op(), (*args, 4, 16))


def test_quant_gemm_through_the_provider_chain(fresh_choice):
    fresh_choice.setenv("FORGE_KERNELS_QUANT_GEMM", "triton")
    assert ops.choose("quant_gemm", DEVICE).provider == "triton"
    torch.manual_seed(1)
    check(
        torch.randn(2, 64),
        quantized_weight(3, 64, 8, 32, True, torch.float32),
        None,
        fn=ops.quant_gemm,
    )


def _bad_cases():
    p4 = quantized_weight(4, 64, 4, 32, True, torch.float16)
    p8 = quantized_weight(4, 64, 8, 32, True, torch.float16)
    x = torch.randn(2, 64)
    out = torch.empty(2, 4)
    ok = dict(
        out=out,
        x=x,
        qweight=p4.qweight,
        scales=p4.scales,
        mins=p4.mins,
        bias=None,
        bits=4,
        group_size=32,
    )
    yield "bits", dict(ok, bits=3)
    yield "group_size", dict(ok, group_size=48)
    yield "qweight dtype (4)", dict(ok, qweight=p4.qweight.view(torch.int8))
    yield "qweight dtype (8)", dict(ok, qweight=p8.qweight.view(torch.uint8), bits=8)
    yield "qweight shape", dict(ok, qweight=p8.qweight.view(torch.uint8))
    yield "x dtype", dict(ok, x=x.double())
    yield "scales dtype", dict(ok, scales=p4.scales.bfloat16(), mins=None)
    yield "scales shape", dict(ok, scales=p4.scales[:, :1], mins=None)
    yield "mins dtype", dict(ok, mins=p4.mins.float())
    yield "bias shape", dict(ok, bias=torch.randn(5))
    yield "bias dtype", dict(ok, bias=torch.randn(4).half())
    yield "out shape", dict(ok, out=torch.empty(4, 2))
    yield "out dtype", dict(ok, out=out.half())
    yield "out overlaps x", dict(ok, out=x[:, :4], x=x)


@pytest.mark.parametrize("case", [name for name, _ in _bad_cases()])
def test_quant_gemm_bad_inputs(case):
    kwargs = dict(_bad_cases())[case]
    with pytest.raises(RuntimeError) as expected:
        reference.quant_gemm(*kwargs.values())
    args = on_device(*kwargs.values())
    if case == "out overlaps x":  # keep the aliasing on the device
        args[1] = args[1] if DEVICE == "cpu" else torch.randn(2, 64, device=DEVICE)
        args[0] = args[1][:, :4]
    with pytest.raises(RuntimeError) as got:
        triton_op()(*args)
    assert str(got.value) == str(expected.value)
