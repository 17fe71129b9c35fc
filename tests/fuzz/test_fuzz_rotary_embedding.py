"""rotary_embedding, fuzzed: query/key as 2-D or 3-D slices of a packed qkv (strided),
padded heads, no key, no tokens, no heads, partial rotary dims, NeoX and GPT-J pairs."""

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import Maker, float_dtypes, seeds


@st.composite
def rotary_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    tokens = draw(st.integers(0, 4 if small else 12))
    head_size = draw(st.integers(1, 40) | st.sampled_from([64, 80, 128, 256]))
    rot_dim = 2 * draw(st.integers(1, max(1, head_size // 2)))
    assume(rot_dim <= head_size)
    heads, kv_heads = draw(st.integers(0, 4)), draw(st.integers(0, 2))
    three_d = draw(st.booleans())
    # q and k are slices of one packed qkv row, as vLLM passes them.
    qkv = m.input(
        [tokens, (heads + 2 * kv_heads) * head_size + draw(st.integers(0, 3))], dtype, scale=3
    )
    query = qkv[:, : heads * head_size]
    key = qkv[:, heads * head_size : (heads + kv_heads) * head_size]
    if three_d:
        query = query.view(tokens, heads, head_size)
        key = key.view(tokens, kv_heads, head_size)
        if draw(st.booleans()):  # heads padded apart: a head stride over head_size
            query, key = m.padded(query.clone(), leading=1), m.padded(key.clone(), leading=1)
    max_position = draw(st.integers(1, 50))
    cache = m.input([max_position, rot_dim], dtype)
    if draw(st.booleans()):
        cache = m.padded(cache, leading=0)
    positions = m.randint(0, max_position, [tokens])
    key = key if draw(st.booleans()) else None
    args = [positions, query, key, head_size, cache, draw(st.booleans())]
    return Case("rotary_embedding", args, outputs=(1,) if key is None else (1, 2))


@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(provider):
    fuzz(
        rotary_cases(small=provider == "triton"),
        lambda case: assert_agrees_with_reference(provider, case),
        VALID[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(provider):
    fuzz(
        rotary_cases(small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        NONFINITE[provider],
    )


def position_out_of_range(draw, case):
    positions, cache = case.args[0], case.args[4]
    assume(positions.numel() > 0)
    i = draw(st.integers(0, positions.numel() - 1))
    value = draw(st.sampled_from([cache.shape[0], cache.shape[0] + 7, -1, -(2**40)]))
    mut.set_element(case, 0, i, value)
    return Broken(case, "positions", f"positions[{i}] = {value}", "position out of range")


def flat_query(draw, case):
    case.args[1] = q = case.args[1].flatten()
    return Broken(case, "query", mut.shape_text(q), "1-D query")


def bad_rotary_dim(draw, case):
    cache, head_size = case.args[4], case.args[3]
    rot_dim = draw(st.sampled_from([1, 3, head_size + 1, head_size + 2, 0]))
    assume(rot_dim % 2 or rot_dim > head_size or rot_dim == 0)
    case.args[4] = torch.zeros(cache.shape[0], rot_dim, dtype=cache.dtype)
    return Broken(case, "cos_sin_cache", f"got {rot_dim}", "bad rotary dim")


def resized_query(dim: int):
    def mutate(draw, case):
        broken = mut.resized(1, "query", dim)(draw, case)
        return Broken(case, "query", str(case.args[1].shape[dim]), broken.how)

    return mutate


MUTATIONS = {
    "positions dtype": mut.wrong_dtype(0, "positions"),
    "positions rank": mut.extra_leading_dim(0, "positions"),
    "positions strides": mut.non_contiguous(0, "positions"),
    "positions meta": mut.on_meta(0, "positions"),
    "position out of range": position_out_of_range,
    "query dtype": mut.wrong_dtype(1, "query", mut.NON_FLOAT_DTYPES),
    "query tokens": resized_query(0),
    "query width": resized_query(-1),
    "query 1-D": flat_query,
    "query stride": mut.strided_last_dim(1, "query"),
    "key dtype": mut.wrong_dtype(2, "key"),
    "key meta": mut.on_meta(2, "key"),
    "key stride": mut.strided_last_dim(2, "key"),
    "head_size": mut.bad_scalar(3, "head_size", [(0, "got 0"), (-64, "got -64")]),
    "cache dtype": mut.wrong_dtype(4, "cos_sin_cache"),
    "cache rank": mut.extra_leading_dim(4, "cos_sin_cache"),
    "cache stride": mut.strided_last_dim(4, "cos_sin_cache"),
    "cache meta": mut.on_meta(4, "cos_sin_cache"),
    "rotary dim": bad_rotary_dim,
}


@pytest.mark.parametrize("how", MUTATIONS)
def test_rejects_bad_input_alike(how):
    fuzz(mut.broken_cases(rotary_cases(), MUTATIONS[how]), assert_rejected_alike, INVALID)
