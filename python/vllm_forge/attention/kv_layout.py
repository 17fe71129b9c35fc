"""FORGE_ATTN's arrangement of a layer's KV cache, shared by the backend, the tests and
the benchmarks (no vLLM import).

vLLM gives each layer a [num_blocks, num_kv_heads, block_size, 2 * head_size] tensor
(layout LBHNC: each (block, head) is one contiguous run of 2 * block_size * head_size
elements). We store in that run the block's keys transposed, [head_size][block_size], then
its values, [block_size][head_size]: the arrangement paged_attention streams fastest
(scores for 16 keys are 16-lane FMAs over head_size, with no horizontal sums).
"""

import torch


def split_kv_cache(kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[num_blocks, kv_heads, block_size, 2 * d] -> (key_cache, value_cache), both logical
    [num_blocks, kv_heads, block_size, d] views; key_cache has strides (.., .., 1, block_size)."""
    num_blocks, num_kv_heads, block_size, two_d = kv_cache.shape
    d = two_d // 2
    tiles = kv_cache.view(num_blocks, num_kv_heads, 2 * block_size * d)
    keys = (
        tiles[..., : block_size * d].view(num_blocks, num_kv_heads, d, block_size).transpose(2, 3)
    )
    values = tiles[..., block_size * d :].view(num_blocks, num_kv_heads, block_size, d)
    return keys, values


def empty_kv_cache(
    num_blocks: int,
    num_kv_heads: int,
    block_size: int,
    head_size: int,
    dtype: torch.dtype,
    fill: float | None = None,
) -> torch.Tensor:
    """A [num_blocks, num_kv_heads, block_size, 2 * head_size] cache as vLLM allocates it."""
    shape = (num_blocks, num_kv_heads, block_size, 2 * head_size)
    return torch.empty(shape, dtype=dtype) if fill is None else torch.full(shape, fill, dtype=dtype)
