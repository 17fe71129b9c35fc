"""softmax / log_softmax over rows with a per-row temperature, and topk_softmax.

Rows may be as wide as a vocabulary (150k+), so softmax streams each row in tiles:
one pass for the running max and sum (online rescaling), one pass to write.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton import next_power_of_2

BLOCK = 2048
MAX_EXPERTS = 4096


@triton.jit
def _softmax_kernel(
    out_ptr,
    stride_out_row,
    x_ptr,
    stride_x_row,
    temperature_ptr,
    n_cols,
    HAS_TEMPERATURE: tl.constexpr,
    LOG: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x_row
    inv_t = 1.0
    if HAS_TEMPERATURE:
        inv_t = 1.0 / tl.load(temperature_ptr + row).to(tl.float32)
    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK], tl.float32)
    for c0 in range(0, n_cols, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        x = tl.load(x_row + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32) * inv_t
        m_new = tl.maximum(m, x)
        # Lanes that have seen only -inf keep s = 0 (avoid exp(-inf - -inf) = nan).
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.exp(x - m_safe)
        m = m_new
    row_max = tl.max(m, axis=0)
    total = tl.sum(s * tl.exp(m - row_max), axis=0)
    for c0 in range(0, n_cols, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32) * inv_t
        if LOG:
            y = x - row_max - tl.log(total)
        else:
            y = tl.exp(x - row_max) / total
        tl.store(out_ptr + row * stride_out_row + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


def _softmax(
    op: str, out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None, log: bool
) -> None:
    checks.softmax(op, out, input, temperature)
    rows, cols = input.shape
    if rows == 0:
        return
    _softmax_kernel[(rows,)](
        out,
        out.stride(0),
        input,
        input.stride(0),
        temperature if temperature is not None else input,
        cols,
        HAS_TEMPERATURE=temperature is not None,
        LOG=log,
        BLOCK=min(BLOCK, next_power_of_2(cols)),
    )


def softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    _softmax("softmax", out, input, temperature, log=False)


def log_softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    _softmax("log_softmax", out, input, temperature, log=True)


@triton.jit
def _topk_softmax_kernel(
    weights_ptr,
    ids_ptr,
    gating_ptr,
    stride_gating_row,
    n_experts,
    k,
    RENORMALIZE: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """k rounds of arg-max over the row's probabilities (k is small: MoE routing)."""
    row = tl.program_id(0).to(tl.int64)
    experts = tl.arange(0, BLOCK_E)
    valid = experts < n_experts
    x = tl.load(gating_ptr + row * stride_gating_row + experts, mask=valid, other=float("-inf")).to(
        tl.float32
    )
    p = tl.exp(x - tl.max(x, axis=0))
    p = tl.where(valid, p / tl.sum(p, axis=0), -1.0)  # padding never wins
    # A NaN logit (or +inf ones: inf - inf) makes the whole softmax row NaN, as in the
    # reference. No maximum ever equals a NaN, so the arg-max below would pick padding
    # (ids past the experts, weights -1): such a row gets NaN weights and the lowest
    # expert ids instead, as the native kernel gives.
    row_nan = tl.max(tl.where(valid & (p != p), 1, 0), axis=0) > 0
    p = tl.where(valid & row_nan, 0.0, p)
    slots = tl.arange(0, BLOCK_K)
    top_w = tl.zeros([BLOCK_K], tl.float32)
    top_i = tl.zeros([BLOCK_K], tl.int32)
    for j in range(k):
        best = tl.max(p, axis=0)
        # The lowest index among equal maxima, like a stable sort.
        best_i = tl.min(tl.where(p == best, experts, BLOCK_E), axis=0)
        top_w = tl.where(slots == j, best, top_w)
        top_i = tl.where(slots == j, best_i, top_i)
        p = tl.where(experts == best_i, -2.0, p)
    if RENORMALIZE:
        top_w = top_w / tl.sum(tl.where(slots < k, top_w, 0.0), axis=0)
    top_w = tl.where(row_nan, float("nan"), top_w)
    mask = slots < k
    tl.store(weights_ptr + row * k + slots, top_w, mask=mask)
    tl.store(ids_ptr + row * k + slots, top_i, mask=mask)


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    gating_output: torch.Tensor,
    renormalize: bool,
) -> None:
    checks.topk_softmax(topk_weights, topk_ids, gating_output, renormalize)
    rows, n_experts = gating_output.shape
    k = topk_weights.shape[1]
    checks.check(
        n_experts <= MAX_EXPERTS,
        "topk_softmax",
        f"the Triton kernel takes at most {MAX_EXPERTS} experts, got {n_experts}",
    )
    if rows == 0:
        return
    _topk_softmax_kernel[(rows,)](
        topk_weights,
        topk_ids,
        gating_output,
        gating_output.stride(0),
        n_experts,
        k,
        RENORMALIZE=bool(renormalize),
        BLOCK_E=next_power_of_2(n_experts),
        BLOCK_K=next_power_of_2(k),
    )
