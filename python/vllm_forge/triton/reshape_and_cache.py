"""reshape_and_cache: scatter new K/V rows into the paged cache at slot_mapping.

One program per token, all its KV heads as one [heads, head_size] tile. The caches are
addressed through their four strides, so any layout of the logical
[num_blocks, num_kv_heads, block_size, head_size] view works (keys transposed per block,
as the CPU attention kernel wants, included).
"""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton import next_power_of_2


@triton.jit
def _reshape_and_cache_kernel(
    key_cache_ptr,
    value_cache_ptr,
    key_ptr,
    value_ptr,
    slot_ptr,
    stride_kc_block,
    stride_kc_head,
    stride_kc_slot,
    stride_kc_dim,
    stride_vc_block,
    stride_vc_head,
    stride_vc_slot,
    stride_vc_dim,
    stride_k_token,
    stride_k_head,
    stride_v_token,
    stride_v_head,
    num_heads,
    head_size,
    block_size,
    num_slots,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + token)
    # < 0 is padding; >= num_slots is refused on the host where that check is free (CPU
    # tensors), and never written here.
    if (slot >= 0) & (slot < num_slots):
        block = slot // block_size
        offset = slot % block_size
        heads = tl.arange(0, BLOCK_H)[:, None]
        dims = tl.arange(0, BLOCK_D)[None, :]
        mask = (heads < num_heads) & (dims < head_size)
        k = tl.load(key_ptr + token * stride_k_token + heads * stride_k_head + dims, mask=mask)
        v = tl.load(value_ptr + token * stride_v_token + heads * stride_v_head + dims, mask=mask)
        tl.store(
            key_cache_ptr
            + block * stride_kc_block
            + heads * stride_kc_head
            + offset * stride_kc_slot
            + dims * stride_kc_dim,
            k,
            mask=mask,
        )
        tl.store(
            value_cache_ptr
            + block * stride_vc_block
            + heads * stride_vc_head
            + offset * stride_vc_slot
            + dims * stride_vc_dim,
            v,
            mask=mask,
        )


def reshape_and_cache(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    checks.reshape_and_cache(key_cache, value_cache, key, value, slot_mapping)
    num_tokens, num_heads, head_size = key.shape
    block_size = key_cache.shape[2]
    num_slots = key_cache.shape[0] * block_size
    if num_tokens == 0:
        return
    _reshape_and_cache_kernel[(num_tokens,)](
        key_cache,
        value_cache,
        key,
        value,
        slot_mapping,
        *key_cache.stride(),
        *value_cache.stride(),
        key.stride(0),
        key.stride(1),
        value.stride(0),
        value.stride(1),
        num_heads,
        head_size,
        block_size,
        num_slots,
        BLOCK_H=next_power_of_2(num_heads),
        BLOCK_D=next_power_of_2(head_size),
    )
