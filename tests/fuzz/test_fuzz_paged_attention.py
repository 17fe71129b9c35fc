"""paged_attention, fuzzed: mixed batches of decodes, prefills and chunked prefills
(sequences with no new tokens, no sequences at all), GQA/MQA, every head size and block
size the kernel takes, sliding windows, soft-caps, both KV layouts, strided queries, and
NaN in every cache slot no query may read (tests/utils.make_paged_batch)."""

import math

import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

from tests.fuzz import mutations as mut
from tests.fuzz.agreement import Broken, Case, assert_agrees_with_reference, assert_rejected_alike
from tests.fuzz.budget import INVALID, NONFINITE, NUMPY_NONFINITE_WARNINGS, VALID, fuzz
from tests.fuzz.tensors import Maker, float_dtypes, seeds
from tests.utils import make_paged_batch

# The reference loops over sequences in Python and the interpreter is slow: fewer cases.
ATTENTION_VALID = {p: max(1, n // 2) for p, n in VALID.items()}
ATTENTION_NONFINITE = {p: max(1, n // 2) for p, n in NONFINITE.items()}


@st.composite
def sequences(draw, small: bool):
    """(q_len, seq_len) per sequence: q_len 0 (nothing new) to seq_len (a whole prefill)."""
    n = draw(st.integers(1, 3 if small else 5))
    seqs = []
    for _ in range(n):
        seq_len = draw(st.integers(0, 40 if small else 100))
        q_len = draw(st.sampled_from([0, 1, seq_len]) | st.integers(0, seq_len))
        seqs.append((min(q_len, seq_len), seq_len))
    return seqs


@st.composite
def attention_cases(draw, small=False, nonfinite=False):
    m = Maker(draw(seeds), nonfinite=draw(st.integers(1, 3)) if nonfinite else 0)
    dtype = draw(float_dtypes)
    kv_heads, group = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    head_size = 16 * draw(st.integers(2, 4 if small else 16))
    block_size = draw(st.sampled_from([16, 32, 48]))
    window = draw(st.sampled_from([-1, -1, 1, 5, 33]))
    layout = draw(st.sampled_from(["vllm", "separate"]))
    b = make_paged_batch(
        draw(sequences(small)),
        num_heads=kv_heads * group,
        num_kv_heads=kv_heads,
        head_size=head_size,
        block_size=block_size,
        dtype=dtype,
        strided_query=draw(st.booleans()),
        sliding_window=window,
        seed=m.choice(2**31),
        kv_layout=layout,
    )
    # Not into value_cache: see test_value_beyond_the_causal_mask_stays_out.
    for t in (b.query, b.key_cache):
        m.plant_nonfinite(t)
    out = m.output(b.query.shape, dtype, draw(st.sampled_from(["contiguous", "padded"])))
    scale = draw(st.sampled_from([1.0, 0.3, 3.0])) / math.sqrt(head_size)
    softcap = draw(st.sampled_from([0.0, 0.0, 5.0, 30.0]))
    return Case("paged_attention", list(b.args(out, scale, window, softcap)), outputs=(0,))


@st.composite
def empty_attention_cases(draw):
    """No sequences and no tokens: legal, nothing to do."""
    dtype = draw(float_dtypes)
    cache = torch.zeros(2, 1, 16, 32, dtype=dtype)
    q = torch.empty(0, 2, 32, dtype=dtype)
    args = [
        q.clone(),
        q,
        cache.transpose(2, 3).contiguous().transpose(2, 3),
        cache.clone(),
        torch.zeros(1, dtype=torch.int32),
        torch.zeros(0, dtype=torch.int32),
        torch.zeros(0, draw(st.integers(0, 3)), dtype=torch.int32),
        0.1,
        -1,
        0.0,
    ]
    return Case("paged_attention", args, outputs=(0,))


@pytest.mark.parametrize("provider", VALID)
def test_matches_reference(provider):
    cases = attention_cases(small=provider == "triton") | empty_attention_cases()
    fuzz(
        cases, lambda case: assert_agrees_with_reference(provider, case), ATTENTION_VALID[provider]
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.parametrize("provider", NONFINITE)
def test_nonfinite_like_reference(provider):
    fuzz(
        attention_cases(small=provider == "triton", nonfinite=True),
        lambda case: assert_agrees_with_reference(provider, case),
        ATTENTION_NONFINITE[provider],
    )


@NUMPY_NONFINITE_WARNINGS
@pytest.mark.xfail(
    strict=True,
    reason="native and Triton multiply a whole tile of values by "
    "the probabilities, masked ones 0, so an inf value leaks into earlier "
    "queries' outputs as 0 * inf = NaN (reported; the reference keeps it out)",
)
@pytest.mark.parametrize("provider", ["native", "triton"])
def test_value_beyond_the_causal_mask_stays_out(provider):
    """A prefill of 5 tokens; an inf in the value of token 3 may reach tokens 3 and 4 only."""
    b = make_paged_batch(
        [(5, 5)], num_heads=1, num_kv_heads=1, head_size=32, block_size=16, dtype=torch.float32
    )
    b.value_cache[int(b.block_table[0, 0]), 0, 3, 2] = float("inf")
    out = torch.zeros_like(b.query)
    assert_agrees_with_reference(
        provider, Case("paged_attention", list(b.args(out, 0.2)), outputs=(0,))
    )


# Positions of the arguments.
OUT, QUERY, KEY_CACHE, VALUE_CACHE, QSL, SEQ_LENS, BLOCK_TABLE = range(7)
SCALE, WINDOW, SOFTCAP = 7, 8, 9


def metadata(case):
    return (
        case.args[QSL].tolist(),
        case.args[SEQ_LENS].tolist(),
        case.args[BLOCK_TABLE],
        case.args[KEY_CACHE].shape[2],
    )


def qsl_first(draw, case):
    mut.set_element(case, QSL, 0, 1)
    return Broken(case, "query_start_loc[0]", "got 1", "query_start_loc[0] = 1")


def qsl_last(draw, case):
    qsl = case.args[QSL]
    last = int(qsl[-1]) + 1
    mut.set_element(case, QSL, qsl.numel() - 1, last)
    return Broken(case, f"query_start_loc[{qsl.numel() - 1}]", f"got {last}", "qsl[-1] + 1")


def qsl_decreasing(draw, case):
    qsl = metadata(case)[0]
    assume(len(qsl) >= 3)
    j = draw(st.integers(1, len(qsl) - 2))
    mut.set_element(case, QSL, j, qsl[j - 1] - 1)
    return Broken(
        case,
        "query_start_loc",
        f"query_start_loc[{j - 1}] = {qsl[j - 1]} > query_start_loc[{j}] = {qsl[j - 1] - 1}",
        "query_start_loc decreasing",
    )


def seq_len_short(draw, case):
    qsl, lens, _, _ = metadata(case)
    long_enough = [s for s in range(len(lens)) if qsl[s + 1] > qsl[s]]
    assume(long_enough)
    s = draw(st.sampled_from(long_enough))
    value = qsl[s + 1] - qsl[s] - 1
    mut.set_element(case, SEQ_LENS, s, value)
    return Broken(case, f"seq_lens[{s}]", f"= {value} is shorter", "seq_len < q_len")


def seq_len_long(draw, case):
    qsl, lens, table, block_size = metadata(case)
    assume(lens)
    s = draw(st.integers(0, len(lens) - 1))
    value = (table.shape[1] + draw(st.integers(0, 2))) * block_size + 1
    mut.set_element(case, SEQ_LENS, s, value)
    return Broken(case, f"seq_lens[{s}]", f"has only {table.shape[1]} columns", "seq_len > table")


def block_id_out_of_range(draw, case):
    qsl, lens, table, block_size = metadata(case)
    used = [(s, b) for s in range(len(lens)) for b in range(-(-lens[s] // block_size))]
    assume(used)
    s, b = draw(st.sampled_from(used))
    num_blocks = case.args[KEY_CACHE].shape[0]
    value = draw(st.sampled_from([num_blocks, num_blocks + 5, -1, -(2**31)]))
    mut.set_element(case, BLOCK_TABLE, (s, b), value)
    return Broken(case, f"block_table[{s}][{b}]", f"= {value} is out of range", "bad block id")


def replace_query(draw, case, heads=0, head_size=0):
    """query and out with `heads` more heads and `head_size` more dims."""
    q = case.args[QUERY]
    shape = [q.shape[0], q.shape[1] + heads, q.shape[2] + head_size]
    case.args[QUERY] = torch.zeros(shape, dtype=q.dtype)
    case.args[OUT] = torch.zeros(shape, dtype=q.dtype)
    return shape


def head_ratio(draw, case):
    assume(case.args[KEY_CACHE].shape[1] >= 2)
    heads = replace_query(draw, case, heads=1)[1]
    return Broken(case, "query heads", f"({heads})", "heads not a multiple of kv heads")


def cache_head_size(draw, case):
    size = replace_query(draw, case, head_size=16)[2]
    return Broken(case, "key_cache.size(3)", f"must be {size} (head_size)", "cache head size")


def bad_head_size(draw, case):
    """Every tensor cut to an unsupported head size (so the sizes still agree)."""
    size = case.args[QUERY].shape[2] - draw(st.sampled_from([8, 1, case.args[QUERY].shape[2] - 16]))
    for i in (OUT, QUERY, KEY_CACHE, VALUE_CACHE):
        case.args[i] = case.args[i][..., :size]
    return Broken(case, "head_size", f"got {size}", f"head size {size}")


def bad_block_size(draw, case):
    block_size = case.args[KEY_CACHE].shape[2]
    size = block_size - draw(st.sampled_from([8, 1, block_size]))
    for i in (KEY_CACHE, VALUE_CACHE):
        case.args[i] = case.args[i][:, :, :size]
    return Broken(case, "block size", f"got {size}", f"block size {size}")


def tokens_without_sequences(draw, case):
    tokens = case.args[QUERY].shape[0]
    assume(tokens > 0)
    case.args[SEQ_LENS] = torch.zeros(0, dtype=torch.int32)
    case.args[QSL] = torch.zeros(1, dtype=torch.int32)
    case.args[BLOCK_TABLE] = case.args[BLOCK_TABLE][:0]
    return Broken(case, "seq_lens", f"{tokens} query tokens but no sequences", "no sequences")


def unsupported_dtype(draw, case):
    assume(case.args[QUERY].shape[0] > 0)
    dtype = draw(st.sampled_from([torch.float64, torch.int32, torch.int8]))
    for i in (OUT, QUERY, KEY_CACHE, VALUE_CACHE):
        case.args[i] = case.args[i].to(dtype)
    return Broken(case, "dtype", f"unsupported dtype {mut.C10_NAMES[dtype]}", f"all {dtype}")


def keys_not_transposed(draw, case):
    case.args[KEY_CACHE] = k = case.args[KEY_CACHE].contiguous()
    return Broken(case, "key_cache", mut.strides_text(k), "keys not transposed")


FLOATS_NOT_POSITIVE = [
    (0.0, "got 0"),
    (-1.0, "got -1"),
    (float("nan"), "got nan"),
    (float("inf"), "got inf"),
]
TENSORS = ["out", "query", "key_cache", "value_cache", "query_start_loc", "seq_lens", "block_table"]
MUTATIONS = {
    **{f"{name} rank": mut.extra_leading_dim(i, name) for i, name in enumerate(TENSORS)},
    # Not query on meta: see README.md.
    **{f"{name} meta": mut.on_meta(i, name) for i, name in enumerate(TENSORS) if name != "query"},
    "out dtype": mut.wrong_dtype(OUT, "out"),
    "key_cache dtype": mut.wrong_dtype(KEY_CACHE, "key_cache"),
    "value_cache dtype": mut.wrong_dtype(VALUE_CACHE, "value_cache"),
    "query_start_loc dtype": mut.wrong_dtype(QSL, "query_start_loc"),
    "seq_lens dtype": mut.wrong_dtype(SEQ_LENS, "seq_lens"),
    "block_table dtype": mut.wrong_dtype(BLOCK_TABLE, "block_table"),
    "unsupported dtype": unsupported_dtype,
    "out shape": mut.resized(OUT, "out", 1),
    "value_cache shape": mut.resized(VALUE_CACHE, "value_cache", 0),
    "cache head size": cache_head_size,
    "head size": bad_head_size,
    "head ratio": head_ratio,
    "block size": bad_block_size,
    "query_start_loc size": mut.resized(QSL, "query_start_loc", 0, lambda t: f"got {t.shape[0]}"),
    "block_table rows": mut.resized(BLOCK_TABLE, "block_table", 0, lambda t: f"got {t.shape[0]}"),
    "no sequences": tokens_without_sequences,
    "out stride": mut.strided_last_dim(OUT, "out"),
    "query stride": mut.strided_last_dim(QUERY, "query"),
    "keys not transposed": keys_not_transposed,
    "value_cache stride": mut.strided_last_dim(VALUE_CACHE, "value_cache"),
    "query_start_loc strides": mut.non_contiguous(QSL, "query_start_loc"),
    "seq_lens strides": mut.non_contiguous(SEQ_LENS, "seq_lens"),
    "block_table stride": mut.strided_last_dim(BLOCK_TABLE, "block_table"),
    "scale": mut.bad_scalar(SCALE, "scale", FLOATS_NOT_POSITIVE),
    "softcap": mut.bad_scalar(
        SOFTCAP, "softcap", [(-2.0, "got -2"), (float("inf"), "got inf"), (float("nan"), "got nan")]
    ),
    "sliding_window": mut.bad_scalar(
        WINDOW,
        "sliding_window",
        [(0, "got 0"), (-2, "got -2"), (2**40, "too large: 1099511627776")],
    ),
    "query_start_loc[0]": qsl_first,
    "query_start_loc[-1]": qsl_last,
    "query_start_loc decreasing": qsl_decreasing,
    "seq_len short": seq_len_short,
    "seq_len long": seq_len_long,
    "block id": block_id_out_of_range,
}


@pytest.mark.parametrize("how", MUTATIONS)
def test_rejects_bad_input_alike(how):
    fuzz(
        mut.broken_cases(attention_cases(small=True), MUTATIONS[how]),
        assert_rejected_alike,
        INVALID,
    )
