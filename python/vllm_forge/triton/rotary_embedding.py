"""rotary_embedding: rotate the first rot_dim dims of every query/key head in place.

One program per token: the cos/sin row of its position is loaded once and applied to
all heads of query and key as a [heads, rot_dim / 2] tile.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton import next_power_of_2


@triton.jit
def _rotate_heads(
    x_ptr,
    stride_x_head,
    num_heads,
    cos,
    sin,
    half_dims,
    half_mask,
    IS_NEOX: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    for h0 in range(0, num_heads, BLOCK_H):
        heads = h0 + tl.arange(0, BLOCK_H)
        mask = (heads < num_heads)[:, None] & half_mask[None, :]
        base = x_ptr + heads[:, None] * stride_x_head
        if IS_NEOX:  # pairs (i, i + rot_dim / 2)
            first = base + half_dims[None, :]
            second = first + HALF
        else:  # pairs (2i, 2i + 1)
            first = base + 2 * half_dims[None, :]
            second = first + 1
        x1 = tl.load(first, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(second, mask=mask, other=0.0).to(tl.float32)
        tl.store(first, (x1 * cos - x2 * sin).to(x_ptr.dtype.element_ty), mask=mask)
        tl.store(second, (x2 * cos + x1 * sin).to(x_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rotary_embedding_kernel(
    positions_ptr,
    q_ptr,
    stride_q_token,
    stride_q_head,
    num_q_heads,
    k_ptr,
    stride_k_token,
    stride_k_head,
    num_k_heads,
    cache_ptr,
    stride_cache_pos,
    HALF: tl.constexpr,
    IS_NEOX: tl.constexpr,
    HAS_KEY: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    pos = tl.load(positions_ptr + token).to(tl.int64)
    half_dims = tl.arange(0, BLOCK_HALF)
    half_mask = half_dims < HALF
    row = cache_ptr + pos * stride_cache_pos
    cos = tl.load(row + half_dims, mask=half_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(row + HALF + half_dims, mask=half_mask, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(
        q_ptr + token * stride_q_token,
        stride_q_head,
        num_q_heads,
        cos,
        sin,
        half_dims,
        half_mask,
        IS_NEOX,
        HALF,
        BLOCK_H,
    )
    if HAS_KEY:
        _rotate_heads(
            k_ptr + token * stride_k_token,
            stride_k_head,
            num_k_heads,
            cos,
            sin,
            half_dims,
            half_mask,
            IS_NEOX,
            HALF,
            BLOCK_H,
        )


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor | None,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> None:
    q, k = checks.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox)
    num_tokens, rot_dim = positions.shape[0], cos_sin_cache.shape[1]
    if num_tokens == 0:
        return
    if k is None:
        k = checks.HeadView(0, 0, 0)
    heads = max(q.num_heads, k.num_heads)
    _rotary_embedding_kernel[(num_tokens,)](
        positions,
        query,
        *q,
        key if key is not None else query,
        *k,
        cos_sin_cache,
        cos_sin_cache.stride(0),
        HALF=rot_dim // 2,
        IS_NEOX=bool(is_neox),
        HAS_KEY=key is not None,
        BLOCK_HALF=next_power_of_2(rot_dim // 2),
        BLOCK_H=min(16, next_power_of_2(heads)),
    )
