"""reshape_and_cache, fuzzed: every cache layout (FORGE_ATTN's, keys transposed per
block, separate, vLLM flash-style [blocks, slots, heads, dim] permuted), key/value as
slices of a packed qkv, padding slots (-1), no tokens, any block and head size."""

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import INPUT_LAYOUTS, Maker, float_dtypes, seeds
from vllm_forge.attention.kv_layout import empty_kv_cache, split_kv_cache

NAN = float("nan")
CACHE_LAYOUTS = ("forge", "transposed_keys", "separate", "flash")


def caches(layout: str, shape, dtype):
    """(key_cache, value_cache), logical [num_blocks, kv_heads, block_size, head_size],
    NaN-filled (unwritten slots stay NaN in both providers' caches)."""
    blocks, heads, block_size, head_size = shape
    if layout == "forge":
        return split_kv_cache(empty_kv_cache(blocks, heads, block_size, head_size, dtype, NAN))
    if layout == "transposed_keys":
        keys = torch.full((blocks, heads, head_size, block_size), NAN, dtype=dtype)
        return keys.transpose(2, 3), torch.full(shape, NAN, dtype=dtype)
    if layout == "flash":
        kv = torch.full((2, blocks, block_size, heads, head_size), NAN, dtype=dtype)
        return kv[0].permute(0, 2, 1, 3), kv[1].permute(0, 2, 1, 3)
    return torch.full(shape, NAN, dtype=dtype), torch.full(shape, NAN, dtype=dtype)


@st.composite
def cache_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    tokens = draw(st.integers(0, 4 if small else 12))
    heads = draw(st.integers(1, 4))
    head_size = draw(st.integers(1, 48) | st.sampled_from([64, 128, 256]))
    block_size = draw(st.integers(1, 20) | st.sampled_from([16, 32]))
    blocks = draw(st.integers(1, 4)) + tokens // block_size
    key_cache, value_cache = caches(
        draw(st.sampled_from(CACHE_LAYOUTS)), (blocks, heads, block_size, head_size), dtype
    )
    q_heads = draw(st.integers(0, 3))
    if draw(st.booleans()):  # k and v as slices of one packed qkv row
        qkv = m.input([tokens, (q_heads + 2 * heads) * head_size], dtype)
        k0, v0 = q_heads * head_size, (q_heads + heads) * head_size
        key = qkv[:, k0:v0].view(tokens, heads, head_size)
        value = qkv[:, v0:].view(tokens, heads, head_size)
    else:
        key = m.input([tokens, heads, head_size], dtype, draw(st.sampled_from(INPUT_LAYOUTS)))
        value = m.input([tokens, heads, head_size], dtype, draw(st.sampled_from(INPUT_LAYOUTS)))
    # Distinct slots (vLLM never maps two tokens to one), some padding (-1, skipped).
    slots = torch.randperm(blocks * block_size, generator=m.gen)[:tokens]
    if draw(st.booleans()):
        slots[m.randint(0, 2, [tokens]).bool()] = draw(st.sampled_from([-1, -7]))
    return Case("reshape_and_cache", [key_cache, value_cache, key, value, slots], outputs=(0, 1))


@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(provider):
    fuzz(
        cache_cases(small=provider == "triton"),
        lambda case: assert_agrees_with_reference(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(provider):
    fuzz(
        cache_cases(small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        NONFINITE[provider],
    )


def slot_out_of_range(draw, case):
    key_cache, slots = case.args[0], case.args[4]
    assume(slots.numel() > 0)
    num_slots = key_cache.shape[0] * key_cache.shape[2]
    i = draw(st.integers(0, slots.numel() - 1))
    value = draw(st.sampled_from([num_slots, num_slots + 1, 2**40]))
    mut.set_element(case, 4, i, value)
    return Broken(
        case, "slot_mapping", f"slot_mapping[{i}] = {value} is out of range", "slot out of range"
    )


def other_heads(dim: int, what: str):
    """key and value with one more head (dim 1) or one more element per head (dim 2)."""

    def mutate(draw, case):
        key = case.args[2]
        shape = list(key.shape)
        shape[dim] += 1
        case.args[2] = torch.zeros(shape, dtype=key.dtype)
        case.args[3] = torch.zeros(shape, dtype=key.dtype)
        return Broken(
            case,
            f"key_cache.size({2 * dim - 1})",
            f"must be {shape[dim]} ({what})",
            f"key/value {what} + 1",
        )

    return mutate


MUTATIONS = {
    "key_cache rank": mut.extra_leading_dim(0, "key_cache"),
    "value_cache rank": mut.extra_leading_dim(1, "value_cache"),
    "key rank": mut.extra_leading_dim(2, "key"),
    "value rank": mut.extra_leading_dim(3, "value"),
    "slot_mapping rank": mut.extra_leading_dim(4, "slot_mapping"),
    "key_cache meta": mut.on_meta(0, "key_cache"),
    "value_cache meta": mut.on_meta(1, "value_cache"),
    "value meta": mut.on_meta(3, "value"),
    "slot_mapping meta": mut.on_meta(4, "slot_mapping"),
    "key dtype": mut.wrong_dtype(2, "key", mut.NON_FLOAT_DTYPES),
    "value dtype": mut.wrong_dtype(3, "value"),
    "key_cache dtype": mut.wrong_dtype(0, "key_cache"),
    "value_cache dtype": mut.wrong_dtype(1, "value_cache"),
    "slot_mapping dtype": mut.wrong_dtype(4, "slot_mapping"),
    "value tokens": mut.resized(3, "value", 0),
    "value_cache blocks": mut.resized(1, "value_cache", 0),
    "heads": other_heads(1, "num_kv_heads"),
    "head size": other_heads(2, "head_size"),
    "slot count": mut.resized(4, "slot_mapping", 0, lambda t: f"got {t.shape[0]}"),
    "key stride": mut.strided_last_dim(2, "key"),
    "value stride": mut.strided_last_dim(3, "value"),
    "slot_mapping strides": mut.non_contiguous(4, "slot_mapping"),
    "slot out of range": slot_out_of_range,
}


@pytest.mark.parametrize("how", MUTATIONS)
def test_rejects_bad_input_alike(how):
    fuzz(mut.broken_cases(cache_cases(), MUTATIONS[how]), assert_rejected_alike, INVALID)
