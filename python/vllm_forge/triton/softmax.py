"""softmax / log_softmax over rows with a per-row temperature, and topk_softmax.

Rows may be as wide as a vocabulary (150k+), so softmax streams each row in tiles:
one pass for the running max and sum (online rescaling), one pass to write.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.triton import next_power_of_2
from vllm_forge.triton.checks import check, check_float, check_same

BLOCK = 2048
MAX_EXPERTS = 4096


@triton.jit
def _softmax_kernel(out_ptr, stride_out_row, x_ptr, stride_x_row, temperature_ptr, n_cols,
                    HAS_TEMPERATURE: tl.constexpr, LOG: tl.constexpr, BLOCK: tl.constexpr):
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


def _softmax(op: str, out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None,
             log: bool) -> None:
    check_float(op, "input", input)
    check_same(op, "out", out, "input", input)
    check(input.dim() == 2, op, f"input must be a 2-D tensor [rows, cols], got shape {tuple(input.shape)}")
    check(out.shape == input.shape, op, f"out must have the shape of input {tuple(input.shape)}, "
          f"got {tuple(out.shape)}")
    for name, t in (("input", input), ("out", out)):
        check(t.shape[1] <= 1 or t.stride(1) == 1, op,
              f"{name} must be contiguous in its last dimension, got strides {tuple(t.stride())}")
    rows, cols = input.shape
    check(cols > 0 or rows == 0, op, "input must have at least one column")
    if temperature is not None:
        check(temperature.device == input.device and temperature.dtype == torch.float32, op,
              f"temperature must be float32 on {input.device}, got {temperature.dtype} on "
              f"{temperature.device}")
        check(temperature.shape == (rows,) and temperature.is_contiguous(), op,
              f"temperature must be contiguous with shape ({rows},), got {tuple(temperature.shape)}")
        if temperature.device.type == "cpu":  # free here; a sync on a GPU
            bad = ~(torch.isfinite(temperature) & (temperature > 0))
            if bool(bad.any()):
                r = int(bad.nonzero()[0, 0])
                raise ValueError(f"{op}: temperature[{r}] = {float(temperature[r])} must be "
                                 f"finite and > 0")
    if rows == 0:
        return
    _softmax_kernel[(rows,)](out, out.stride(0), input, input.stride(0),
                             temperature if temperature is not None else input, cols,
                             HAS_TEMPERATURE=temperature is not None, LOG=log,
                             BLOCK=min(BLOCK, next_power_of_2(cols)))


def softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    _softmax("softmax", out, input, temperature, log=False)


def log_softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    _softmax("log_softmax", out, input, temperature, log=True)


@triton.jit
def _topk_softmax_kernel(weights_ptr, ids_ptr, gating_ptr, stride_gating_row, n_experts, k,
                         RENORMALIZE: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr):
    """k rounds of arg-max over the row's probabilities (k is small: MoE routing)."""
    row = tl.program_id(0).to(tl.int64)
    experts = tl.arange(0, BLOCK_E)
    valid = experts < n_experts
    x = tl.load(gating_ptr + row * stride_gating_row + experts, mask=valid,
                other=float("-inf")).to(tl.float32)
    p = tl.exp(x - tl.max(x, axis=0))
    p = tl.where(valid, p / tl.sum(p, axis=0), -1.0)  # padding never wins
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
    mask = slots < k
    tl.store(weights_ptr + row * k + slots, top_w, mask=mask)
    tl.store(ids_ptr + row * k + slots, top_i, mask=mask)


def topk_softmax(topk_weights: torch.Tensor, topk_ids: torch.Tensor, gating_output: torch.Tensor,
                 renormalize: bool) -> None:
    op = "topk_softmax"
    check_float(op, "gating_output", gating_output)
    check(gating_output.dim() == 2 and (gating_output.shape[1] <= 1 or gating_output.stride(1) == 1),
          op, f"gating_output must be 2-D [rows, experts] with unit last stride, got shape "
          f"{tuple(gating_output.shape)} strides {tuple(gating_output.stride())}")
    rows, n_experts = gating_output.shape
    check(topk_weights.dtype == torch.float32 and topk_weights.device == gating_output.device, op,
          f"topk_weights must be float32 on {gating_output.device}, got {topk_weights.dtype} on "
          f"{topk_weights.device}")
    check(topk_ids.dtype == torch.int32 and topk_ids.device == gating_output.device, op,
          f"topk_ids must be int32 on {gating_output.device}, got {topk_ids.dtype} on {topk_ids.device}")
    check(topk_weights.dim() == 2 and topk_weights.shape[0] == rows and topk_weights.is_contiguous(),
          op, f"topk_weights must be contiguous [{rows}, k], got shape {tuple(topk_weights.shape)}")
    check(topk_ids.shape == topk_weights.shape and topk_ids.is_contiguous(), op,
          f"topk_ids must be contiguous with the shape of topk_weights {tuple(topk_weights.shape)}, "
          f"got {tuple(topk_ids.shape)}")
    k = topk_weights.shape[1]
    check(1 <= k <= n_experts, op, f"k (topk_weights.size(1)) must be in [1, {n_experts}], got {k}")
    check(n_experts <= MAX_EXPERTS, op, f"at most {MAX_EXPERTS} experts, got {n_experts}")
    if rows == 0:
        return
    _topk_softmax_kernel[(rows,)](topk_weights, topk_ids, gating_output, gating_output.stride(0),
                                  n_experts, k, RENORMALIZE=bool(renormalize),
                                  BLOCK_E=next_power_of_2(n_experts), BLOCK_K=next_power_of_2(k))
