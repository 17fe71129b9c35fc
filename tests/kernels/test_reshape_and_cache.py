"""reshape_and_cache (native) against the pure-torch reference."""

import pytest
import torch

from tests.utils import DTYPES, on_default_device
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.reshape_and_cache.default


def make_inputs(
    num_tokens,
    num_kv_heads,
    head_size,
    block_size,
    num_blocks,
    dtype,
    strided=False,
    pad_every=0,
    seed=0,
):
    with torch.device("cpu"):  # seeded on the CPU, then moved to the test's device
        made = _make_inputs_on_cpu(
            num_tokens,
            num_kv_heads,
            head_size,
            block_size,
            num_blocks,
            dtype,
            strided,
            pad_every,
            seed,
        )
    return tuple(on_default_device(t) for t in made)


def _make_inputs_on_cpu(
    num_tokens, num_kv_heads, head_size, block_size, num_blocks, dtype, strided, pad_every, seed
):
    gen = torch.Generator().manual_seed(seed)
    if strided:  # key and value as slices of a packed qkv projection
        qkv = torch.randn(num_tokens, 3 * num_kv_heads * head_size, generator=gen).to(dtype)
        key = qkv[:, num_kv_heads * head_size : 2 * num_kv_heads * head_size]
        value = qkv[:, 2 * num_kv_heads * head_size :]
        key = key.view(num_tokens, num_kv_heads, head_size)
        value = value.view(num_tokens, num_kv_heads, head_size)
    else:
        key = torch.randn(num_tokens, num_kv_heads, head_size, generator=gen).to(dtype)
        value = torch.randn(num_tokens, num_kv_heads, head_size, generator=gen).to(dtype)
    slots = torch.randperm(num_blocks * block_size, generator=gen)[:num_tokens]
    if pad_every:
        slots[::pad_every] = -1
    kv = torch.full(
        (num_blocks, num_kv_heads, 2 * block_size, head_size), float("nan"), dtype=dtype
    )
    return kv, key, value, slots.to(torch.int64)


def caches(kv, block_size):
    """Row-major key and value tiles: two halves of a [.., 2 * block_size, d] tensor."""
    return kv[:, :, :block_size], kv[:, :, block_size:]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "num_tokens,num_kv_heads,head_size,block_size",
    [(1, 1, 32, 16), (37, 2, 64, 16), (129, 8, 128, 128), (300, 3, 80, 32)],
)
@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("pad_every", [0, 3])
def test_matches_reference(
    dtype, num_tokens, num_kv_heads, head_size, block_size, strided, pad_every
):
    num_blocks = (num_tokens + block_size - 1) // block_size + 2
    kv, key, value, slots = make_inputs(
        num_tokens, num_kv_heads, head_size, block_size, num_blocks, dtype, strided, pad_every
    )
    kv_ref = kv.clone()
    reference.reshape_and_cache(*caches(kv_ref, block_size), key, value, slots)
    op(*caches(kv, block_size), key, value, slots)
    # Bit-exact, and untouched slots keep their NaN.
    torch.testing.assert_close(kv, kv_ref, atol=0, rtol=0, equal_nan=True)
    written = (slots >= 0).sum().item()
    assert (~kv.isnan()).sum().item() == 2 * written * num_kv_heads * head_size


@pytest.mark.parametrize("dtype", DTYPES)
def test_forge_attn_layout(dtype):
    """Keys transposed per block, as FORGE_ATTN keeps them (kv_layout.split_kv_cache)."""
    from vllm_forge.attention.kv_layout import empty_kv_cache, split_kv_cache

    key = torch.randn(40, 2, 64).to(dtype)
    value = torch.randn(40, 2, 64).to(dtype)
    slots = torch.randperm(4 * 32)[:40]
    slots[7] = -1
    kv = empty_kv_cache(4, 2, 32, 64, dtype, float("nan"))
    kv_ref = kv.clone()
    op(*split_kv_cache(kv), key, value, slots)
    reference.reshape_and_cache(*split_kv_cache(kv_ref), key, value, slots)
    torch.testing.assert_close(kv, kv_ref, atol=0, rtol=0, equal_nan=True)
    k_cache, v_cache = split_kv_cache(kv)
    b, off = divmod(int(slots[3]), 32)
    assert torch.equal(k_cache[b, :, off], key[3]) and torch.equal(v_cache[b, :, off], value[3])


def test_empty():
    kv, key, value, slots = make_inputs(0, 2, 64, 16, 2, torch.float32)
    op(*caches(kv, 16), key, value, slots)
    assert kv.isnan().all()


def test_opcheck():
    kv, key, value, slots = make_inputs(10, 2, 32, 16, 2, torch.bfloat16, pad_every=4)
    key_cache = torch.zeros(2, 2, 16, 32, dtype=torch.bfloat16)
    torch.library.opcheck(op, (key_cache, torch.zeros_like(key_cache), key, value, slots))
