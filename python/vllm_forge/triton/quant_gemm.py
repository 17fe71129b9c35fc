"""quant_gemm: weight-only int4/int8 matmul, out = x @ W^T (+ bias), W dequantised in the
kernel from the packed layout of vllm_forge.quant.format:

    W[n, k] = s[n, k // g] * q[n, k] + m[n, k // g]      (m = 0 without mins)
    out[i, n] = sum_k x[i, k] W[n, k] + bias[n]           (fp32 accumulation)

The weight is in the tiled form: feature n is lane l = n % 16 of tile t = n // 16, whose
codes are 64-byte chunks with 4 bytes per lane. bits 8: k sits in byte
64 (k // 4) + 4 l + k % 4 of the tile; bits 4: in byte 64 (k // 8) + 4 l + k % 4 at shift
4 ((k // 4) % 2). Scales and mins: [tiles, groups, 16], (n, g) at t G 16 + 16 g + l.

A program owns a BLOCK_M x BLOCK_N tile of out and walks K in steps of BLOCK_K (a
multiple of 32, so a step covers whole int4 blocks): it loads the codes of its BLOCK_N
rows of W, unpacks them, applies their group scale and min, and multiplies. With 16 or
more rows of x that is a tl.dot (x's dtype on a GPU, fp32 accumulation); with fewer
(decode) the tile is too thin for a dot and the products are summed by broadcasting.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.quant import checks
from vllm_forge.quant.activations import quantize_x_int8
from vllm_forge.triton import MIN_DOT, interpreting, next_power_of_2

INT4_BLOCK = 32
DOT_BLOCK_M = 64
DOT_BLOCK_N = 64
DOT_BLOCK_K = 64
THIN_BLOCK_N = 32
THIN_BLOCK_K = 32


@triton.jit
def _quant_gemm_kernel(
    out_ptr,
    stride_out_row,
    x_ptr,
    stride_x_row,
    q_ptr,
    stride_q_tile,
    scales_ptr,
    mins_ptr,
    stride_s_tile,
    bias_ptr,
    M,
    N,
    K,
    BITS: tl.constexpr,
    GROUP_SIZE: tl.constexpr,
    HAS_MINS: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_DOT: tl.constexpr,
    DOT_FP32: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """out[rows, cols] = x[rows, :] @ W[cols, :]^T (+ bias[cols]); W from codes, scales
    and mins as in the module docstring. BLOCK_K is a multiple of 32."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < M
    col_ok = cols < N
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * stride_x_row  # [BLOCK_M, 1]
    tile, lane = (cols // 16).to(tl.int64), cols % 16
    q_rows = q_ptr + tile[:, None] * stride_q_tile + 4 * lane[:, None]  # [BLOCK_N, 1]
    s_rows = tile[:, None] * stride_s_tile + lane[:, None]  # [BLOCK_N, 1]
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_ok = kk < K
        w_mask = col_ok[:, None] & k_ok[None, :]
        x = tl.load(x_rows + kk[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        if BITS == 8:
            byte = (kk // 4) * 64 + kk % 4
            code = tl.load(q_rows + byte[None, :], mask=w_mask, other=0).to(tl.float32)
        else:
            byte = (kk // 8) * 64 + kk % 4
            shift = ((kk // 4) % 2) * 4
            packed = tl.load(q_rows + byte[None, :], mask=w_mask, other=0).to(tl.int32)
            code = ((packed >> shift[None, :]) & 0xF).to(tl.float32)
        # Group of each k: one per row of the tile when a group spans the whole step
        # (both are powers of two and k0 is a multiple of BLOCK_K), else one per element.
        if GROUP_SIZE >= BLOCK_K:
            g_off = s_rows + (k0 // GROUP_SIZE) * 16  # [BLOCK_N, 1]
            g_mask = col_ok[:, None]
        else:
            g_off = s_rows + (kk // GROUP_SIZE)[None, :] * 16  # [BLOCK_N, BLOCK_K]
            g_mask = w_mask
        w = code * tl.load(scales_ptr + g_off, mask=g_mask, other=0.0).to(tl.float32)
        if HAS_MINS:
            w += tl.load(mins_ptr + g_off, mask=g_mask, other=0.0).to(tl.float32)
            w = tl.where(w_mask, w, 0.0)  # k past K in the last group: the min alone
        if USE_DOT:
            if DOT_FP32:
                acc += tl.dot(x.to(tl.float32), tl.trans(w), input_precision=DOT_PRECISION)
            else:
                acc += tl.dot(x, tl.trans(w.to(x.dtype)))
        else:
            acc += tl.sum(x.to(tl.float32)[:, None, :] * w[None, :, :], axis=2)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(
        out_ptr + rows.to(tl.int64)[:, None] * stride_out_row + cols[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


def quant_gemm(
    out: torch.Tensor,
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    mins: torch.Tensor | None,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
    quantize_x: bool = False,
) -> None:
    """See vllm_forge.ops.reference.quant_gemm; the same checks and messages."""
    checks.quant_gemm(out, x, qweight, scales, mins, bias, bits, group_size)
    m, k = x.shape
    n = out.shape[1]
    if m == 0 or n == 0:
        return
    if quantize_x:
        # No int8 dot-product kernel: x's int8 rounding in fp32 through the fp32 kernel.
        out32 = torch.empty(m, n, dtype=torch.float32, device=out.device)
        quant_gemm(
            out32,
            quantize_x_int8(x, group_size),
            qweight,
            scales,
            mins,
            None if bias is None else bias.float(),
            bits,
            group_size,
        )
        out.copy_(out32)
        return
    if k == 0:  # no weights to read: the sum is empty (and zero-size tensors have no pointer)
        if bias is None:
            out.zero_()
        else:
            out.copy_(bias.expand(m, n))
        return
    use_dot = m >= MIN_DOT
    if use_dot:
        block_m = min(DOT_BLOCK_M, next_power_of_2(m))
        block_n, block_k = DOT_BLOCK_N, DOT_BLOCK_K
    else:
        block_m = next_power_of_2(m)
        block_n, block_k = THIN_BLOCK_N, THIN_BLOCK_K
    assert block_k % INT4_BLOCK == 0
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _quant_gemm_kernel[grid](
        out,
        out.stride(0),
        x,
        x.stride(0),
        qweight,
        qweight.stride(0),
        scales,
        mins if mins is not None else scales,
        scales.stride(0),
        bias if bias is not None else x,
        m,
        n,
        k,
        BITS=int(bits),
        GROUP_SIZE=int(group_size),
        HAS_MINS=mins is not None,
        HAS_BIAS=bias is not None,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        USE_DOT=use_dot,
        # Triton's interpreter gets bf16 tl.dot wrong (3.9): multiply in fp32 there.
        DOT_FP32=x.dtype == torch.float32 or interpreting(),
        # fp32 x gets fp32 products (tf32 would miss the fp32 tolerance by far).
        DOT_PRECISION="ieee",
    )
