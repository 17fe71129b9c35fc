"""paged_attention (native) against the pure-torch reference."""

import math

import pytest
import torch

from tests.utils import DTYPES, TOLERANCES, make_paged_batch
from vllm_forge.ops import reference

op = torch.ops.vllm_forge.paged_attention.default


# (q_len, seq_len) per sequence: decode at length 1, decodes ending exactly at and one
# past a block boundary, a whole prefill, chunked prefills, all in one batch.
def mixed_batch(block_size):
    return [
        (1, 1),
        (1, block_size),
        (1, block_size + 1),
        (5, 5),
        (7, 40),
        (block_size, 2 * block_size),
        (3, 3 * block_size + 2),
        (1, 77),
    ]


HEAD_SIZES = list(range(32, 257, 16))
HEADS = [(4, 4), (8, 2), (4, 1)]  # MHA, GQA (group 4), MQA


def run_both(batch, scale, sliding_window=-1, softcap=0.0):
    ref = torch.zeros_like(batch.query, memory_format=torch.contiguous_format)
    reference.paged_attention(*batch.args(ref, scale, sliding_window, softcap))
    out = torch.full_like(ref, float("nan"))
    op(*batch.args(out, scale, sliding_window, softcap))
    return out, ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_heads,num_kv_heads", HEADS)
@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("strided_query", [False, True])
def test_mixed_batch(dtype, num_heads, num_kv_heads, block_size, strided_query):
    head_size = 64
    batch = make_paged_batch(
        mixed_batch(block_size),
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        block_size=block_size,
        dtype=dtype,
        strided_query=strided_query,
    )
    out, ref = run_both(batch, scale=1 / math.sqrt(head_size))
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("head_size", HEAD_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_head_sizes(head_size, dtype):
    batch = make_paged_batch(
        [(1, 19), (6, 6), (4, 37)],
        num_heads=4,
        num_kv_heads=2,
        head_size=head_size,
        block_size=16,
        dtype=dtype,
    )
    out, ref = run_both(batch, scale=1 / math.sqrt(head_size))
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sliding_window", [1, 5, 16, 33])
def test_sliding_window(dtype, sliding_window):
    seqs = mixed_batch(16)
    batch = make_paged_batch(
        seqs,
        num_heads=8,
        num_kv_heads=2,
        head_size=64,
        block_size=16,
        dtype=dtype,
        sliding_window=sliding_window,
    )
    out, ref = run_both(batch, scale=0.125, sliding_window=sliding_window)
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("softcap", [5.0, 50.0])
def test_softcap(dtype, softcap):
    batch = make_paged_batch(
        mixed_batch(16), num_heads=4, num_kv_heads=4, head_size=128, block_size=16, dtype=dtype
    )
    # A large scale so that the cap really bends the scores.
    out, ref = run_both(batch, scale=1.0, softcap=softcap)
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])
    plain, _ = run_both(batch, scale=1.0)
    assert not torch.allclose(out.float(), plain.float(), atol=1e-2)


def test_softcap_and_window_together():
    batch = make_paged_batch(
        mixed_batch(32),
        num_heads=8,
        num_kv_heads=1,
        head_size=96,
        block_size=32,
        dtype=torch.float32,
        sliding_window=20,
    )
    out, ref = run_both(batch, scale=0.5, sliding_window=20, softcap=10.0)
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.float32])


def test_large_block_and_long_context():
    """vLLM's CPU default block size (128) and a context spanning many blocks."""
    batch = make_paged_batch(
        [(1, 1000), (64, 700), (1, 128)],
        num_heads=8,
        num_kv_heads=2,
        head_size=128,
        block_size=128,
        dtype=torch.bfloat16,
    )
    out, ref = run_both(batch, scale=1 / math.sqrt(128))
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.bfloat16])


def test_separate_contiguous_caches_and_strided_out():
    batch = make_paged_batch(
        mixed_batch(16),
        num_heads=4,
        num_kv_heads=2,
        head_size=32,
        block_size=16,
        dtype=torch.float32,
        kv_layout="separate",
    )
    ref = torch.zeros_like(batch.query)
    reference.paged_attention(*batch.args(ref, 0.2))
    wide = torch.full((ref.shape[0], ref.shape[1], 2 * ref.shape[2]), float("nan"))
    out = wide[..., :32]  # strided output rows
    op(*batch.args(out, 0.2))
    torch.testing.assert_close(out, ref, **TOLERANCES[torch.float32])
    assert wide[..., 32:].isnan().all()  # nothing written outside the view


def test_empty_batch():
    batch = make_paged_batch(
        [(0, 5)], num_heads=4, num_kv_heads=2, head_size=64, block_size=16, dtype=torch.float32
    )
    out = torch.empty(0, 4, 64)
    op(*batch.args(out, 0.1))


def test_opcheck():
    batch = make_paged_batch(
        [(1, 9), (4, 20)],
        num_heads=4,
        num_kv_heads=2,
        head_size=32,
        block_size=16,
        dtype=torch.float32,
        poison=False,
    )
    out = torch.empty_like(batch.query)
    torch.library.opcheck(op, batch.args(out, 0.3, 8, 20.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "seqs,num_kv_heads,window,softcap",
    [
        ([(1, 1000)], 1, -1, 0.0),  # one long decode: split across threads, merged
        ([(1, 1000)], 2, 300, 0.0),  # split inside a sliding window
        ([(3, 777)], 1, -1, 20.0),  # a 3-token tile split; rows see different key ranges
        ([(5, 900)], 1, 40, 0.0),  # window shorter than a split: some splits empty per row
    ],
)
def test_split_kv(dtype, seqs, num_kv_heads, window, softcap):
    """Fewer tiles than twice the threads: the kernel splits each tile's keys over block
    ranges and merges the partial softmaxes (log-sum-exp)."""
    batch = make_paged_batch(
        seqs,
        num_heads=4 * num_kv_heads,
        num_kv_heads=num_kv_heads,
        head_size=64,
        block_size=16,
        dtype=dtype,
        sliding_window=window,
    )
    out, ref = run_both(batch, scale=0.125, sliding_window=window, softcap=softcap)
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, **TOLERANCES[dtype])
