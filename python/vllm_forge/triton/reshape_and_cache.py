"""reshape_and_cache: scatter new K/V rows into the paged cache at slot_mapping.

One program per token, all its KV heads as one [heads, head_size] tile. The caches are
addressed through their four strides, so any layout of the logical
[num_blocks, num_kv_heads, block_size, head_size] view works (keys transposed per block,
as the CPU attention kernel wants, included).
"""

import torch
import triton
import triton.language as tl

from vllm_forge.triton import next_power_of_2
from vllm_forge.triton.checks import check, check_float, check_index, check_same


@triton.jit
def _reshape_and_cache_kernel(key_cache_ptr, value_cache_ptr, key_ptr, value_ptr, slot_ptr,
                              stride_kc_block, stride_kc_head, stride_kc_slot, stride_kc_dim,
                              stride_vc_block, stride_vc_head, stride_vc_slot, stride_vc_dim,
                              stride_k_token, stride_k_head, stride_v_token, stride_v_head,
                              num_heads, head_size, block_size, num_slots,
                              BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + token)
    # < 0 is padding; >= num_slots is refused on the host where that check is free, and
    # never written here.
    if (slot >= 0) & (slot < num_slots):
        block = slot // block_size
        offset = slot % block_size
        heads = tl.arange(0, BLOCK_H)[:, None]
        dims = tl.arange(0, BLOCK_D)[None, :]
        mask = (heads < num_heads) & (dims < head_size)
        k = tl.load(key_ptr + token * stride_k_token + heads * stride_k_head + dims, mask=mask)
        v = tl.load(value_ptr + token * stride_v_token + heads * stride_v_head + dims, mask=mask)
        tl.store(key_cache_ptr + block * stride_kc_block + heads * stride_kc_head
                 + offset * stride_kc_slot + dims * stride_kc_dim, k, mask=mask)
        tl.store(value_cache_ptr + block * stride_vc_block + heads * stride_vc_head
                 + offset * stride_vc_slot + dims * stride_vc_dim, v, mask=mask)


def reshape_and_cache(key_cache: torch.Tensor, value_cache: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    op = "reshape_and_cache"
    check_float(op, "key", key)
    for name, t in (("value", value), ("key_cache", key_cache), ("value_cache", value_cache)):
        check_same(op, name, t, "key", key)
    check(key.dim() == 3 and value.shape == key.shape, op,
          f"key and value must be [num_tokens, num_kv_heads, head_size], got "
          f"{tuple(key.shape)} and {tuple(value.shape)}")
    check(key_cache.dim() == 4 and value_cache.shape == key_cache.shape, op,
          f"key_cache and value_cache must be [num_blocks, num_kv_heads, block_size, head_size], "
          f"got {tuple(key_cache.shape)} and {tuple(value_cache.shape)}")
    num_tokens, num_heads, head_size = key.shape
    num_blocks, _, block_size, _ = key_cache.shape
    check(key_cache.shape[1] == num_heads and key_cache.shape[3] == head_size, op,
          f"key_cache {tuple(key_cache.shape)} does not match key heads/head_size "
          f"({num_heads}, {head_size})")
    for name, t in (("key", key), ("value", value)):
        check(t.stride(2) == 1 or head_size == 1, op,
              f"{name} must be contiguous in its last dimension, got strides {tuple(t.stride())}")
    check_index(op, "slot_mapping", slot_mapping, key.device, (torch.int64,))
    check(slot_mapping.shape == (num_tokens,) and slot_mapping.is_contiguous(), op,
          f"slot_mapping must be contiguous with shape ({num_tokens},), got {tuple(slot_mapping.shape)}")
    num_slots = num_blocks * block_size
    if slot_mapping.device.type == "cpu" and num_tokens:  # free here; a sync on a GPU
        i = int(slot_mapping.argmax())
        check(int(slot_mapping[i]) < num_slots, op,
              f"slot_mapping[{i}] = {int(slot_mapping[i])} is outside the cache of {num_slots} slots")
    if num_tokens == 0:
        return
    _reshape_and_cache_kernel[(num_tokens,)](
        key_cache, value_cache, key, value, slot_mapping, *key_cache.stride(),
        *value_cache.stride(), key.stride(0), key.stride(1), value.stride(0), value.stride(1),
        num_heads, head_size, block_size, num_slots,
        BLOCK_H=next_power_of_2(num_heads), BLOCK_D=next_power_of_2(head_size))
