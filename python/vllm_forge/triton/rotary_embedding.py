"""rotary_embedding: rotate the first rot_dim dims of every query/key head in place.

One program per token: the cos/sin row of its position is loaded once and applied to
all heads of query and key as a [heads, rot_dim / 2] tile.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.triton import next_power_of_2
from vllm_forge.triton.checks import check, check_float, check_index, check_same


@triton.jit
def _rotate_heads(x_ptr, stride_x_head, num_heads, cos, sin, half_dims, half_mask,
                  IS_NEOX: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr):
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
def _rotary_embedding_kernel(positions_ptr, q_ptr, stride_q_token, stride_q_head, num_q_heads,
                             k_ptr, stride_k_token, stride_k_head, num_k_heads,
                             cache_ptr, stride_cache_pos, HALF: tl.constexpr,
                             IS_NEOX: tl.constexpr, HAS_KEY: tl.constexpr,
                             BLOCK_HALF: tl.constexpr, BLOCK_H: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    pos = tl.load(positions_ptr + token).to(tl.int64)
    half_dims = tl.arange(0, BLOCK_HALF)
    half_mask = half_dims < HALF
    row = cache_ptr + pos * stride_cache_pos
    cos = tl.load(row + half_dims, mask=half_mask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(row + HALF + half_dims, mask=half_mask, other=0.0).to(tl.float32)[None, :]
    _rotate_heads(q_ptr + token * stride_q_token, stride_q_head, num_q_heads, cos, sin,
                  half_dims, half_mask, IS_NEOX, HALF, BLOCK_H)
    if HAS_KEY:
        _rotate_heads(k_ptr + token * stride_k_token, stride_k_head, num_k_heads, cos, sin,
                      half_dims, half_mask, IS_NEOX, HALF, BLOCK_H)


def _heads(op: str, name: str, x: torch.Tensor, num_tokens: int, head_size: int):
    """(token stride, head stride, number of heads) of x [T, H * head_size] or [T, H, head_size]."""
    check(x.dim() in (2, 3), op, f"{name} must be 2-D or 3-D, got shape {tuple(x.shape)}")
    check(x.shape[0] == num_tokens, op, f"{name}.size(0) must be {num_tokens}, got {x.shape[0]}")
    check(x.shape[-1] <= 1 or x.stride(-1) == 1, op,
          f"{name} must be contiguous in its last dimension, got strides {tuple(x.stride())}")
    if x.dim() == 2:
        check(x.shape[1] % head_size == 0, op,
              f"{name}.size(1) = {x.shape[1]} is not a multiple of head_size = {head_size}")
        return x.stride(0), head_size, x.shape[1] // head_size
    check(x.shape[2] == head_size, op, f"{name}.size(2) must be head_size = {head_size}, "
          f"got {x.shape[2]}")
    return x.stride(0), x.stride(1), x.shape[1]


def rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor | None,
                     head_size: int, cos_sin_cache: torch.Tensor, is_neox: bool) -> None:
    op = "rotary_embedding"
    check_float(op, "query", query)
    check_index(op, "positions", positions, query.device, (torch.int64,))
    check(positions.dim() == 1 and positions.is_contiguous(), op,
          f"positions must be 1-D and contiguous, got shape {tuple(positions.shape)} strides "
          f"{tuple(positions.stride())}")
    check(head_size > 0, op, f"head_size must be > 0, got {head_size}")
    check_same(op, "cos_sin_cache", cos_sin_cache, "query", query)
    check(cos_sin_cache.dim() == 2 and cos_sin_cache.stride(-1) == 1, op,
          "cos_sin_cache must be 2-D [max_position, rot_dim] with unit last stride, got shape "
          f"{tuple(cos_sin_cache.shape)} strides {tuple(cos_sin_cache.stride())}")
    rot_dim = cos_sin_cache.shape[1]
    check(0 < rot_dim <= head_size and rot_dim % 2 == 0, op,
          f"rot_dim = cos_sin_cache.size(1) = {rot_dim} must be even and in (0, head_size = {head_size}]")
    num_tokens = positions.shape[0]
    q_strides = _heads(op, "query", query, num_tokens, head_size)
    k_strides = (0, 0, 0)
    if key is not None:
        check_same(op, "key", key, "query", query)
        k_strides = _heads(op, "key", key, num_tokens, head_size)
    if num_tokens == 0:
        return
    if positions.device.type == "cpu":  # a free check here; on a GPU it would cost a sync
        bad = (positions < 0) | (positions >= cos_sin_cache.shape[0])
        if bool(bad.any()):
            t = int(bad.nonzero()[0, 0])
            raise ValueError(f"{op}: positions[{t}] = {int(positions[t])} is outside "
                             f"[0, {cos_sin_cache.shape[0]}) (cos_sin_cache rows)")
    heads = max(q_strides[2], k_strides[2])
    _rotary_embedding_kernel[(num_tokens,)](
        positions, query, q_strides[0], q_strides[1], q_strides[2],
        key if key is not None else query, k_strides[0], k_strides[1], k_strides[2],
        cos_sin_cache, cos_sin_cache.stride(0), HALF=rot_dim // 2, IS_NEOX=bool(is_neox),
        HAS_KEY=key is not None, BLOCK_HALF=next_power_of_2(rot_dim // 2),
        BLOCK_H=min(16, next_power_of_2(heads)))
