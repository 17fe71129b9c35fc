"""Device helpers shared by the Triton kernels."""

import triton
import triton.language as tl


@triton.jit
def tanh(x):
    """tanh from one exp of a non-positive argument: no overflow, exact limits, no libdevice."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def row_offset(row, inner_count, inner_stride, outer_stride):
    """Where row `row` starts, in elements, in a tensor whose leading dimensions form two
    levels of evenly spaced rows (vllm_forge.ops.checks.RowLayout): a contiguous
    [tokens, hidden] or a [tokens, heads, head_dim] slice of a packed qkv."""
    return (row // inner_count) * outer_stride + (row % inner_count) * inner_stride
