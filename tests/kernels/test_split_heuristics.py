"""The paged-attention split policies, one per backend, called with the thread and SM
counts of machines we do not have: CPU and CUDA (csrc/common/split_heuristics.h, through
the C functions of csrc/common/heuristics.cpp) and Triton (decode_splits)."""

import ctypes

import pytest

from vllm_forge import extension

pytestmark = pytest.mark.cpu_only


@pytest.fixture(scope="module")
def lib():
    assert extension.load().loaded
    from vllm_forge import _C

    return ctypes.CDLL(_C.__file__)


# --- CPU: (query tiles x KV heads, threads, KV blocks per item) -> splits ------------------


@pytest.mark.parametrize(
    "n_tiles,threads,n_blocks,splits",
    [
        (1, 2, 64, 4),  # one decode item, 2 threads: 4 pieces (2 per thread)
        (1, 32, 1024, 64),  # one item, 32 threads: 2 per thread
        (1, 32, 100, 25),  # ... but never fewer than 4 blocks a piece
        (3, 2, 64, 2),  # ceil(4 / 3)
        (4, 2, 64, 1),  # enough items for the threads: no split
        (1000, 64, 64, 1),
        (1, 2, 7, 1),  # a short context is not worth merging
        (1, 2, 0, 1),  # an item with no keys (every query token masked out of it)
        (0, 2, 64, 1),  # no items
    ],
)
def test_cpu_splits(lib, n_tiles, threads, n_blocks, splits):
    assert lib.forge_cpu_attention_splits(n_tiles, threads, n_blocks) == splits


@pytest.mark.parametrize("threads", [1, 2, 7, 16, 64, 256])
@pytest.mark.parametrize("n_tiles", [1, 2, 5, 31, 300])
def test_cpu_splits_fill_the_threads(lib, threads, n_tiles):
    """With keys enough, the pieces give every thread work (>= 2 pieces per thread when
    items are fewer than twice the threads), and a piece keeps >= 4 blocks."""
    n_blocks = 4096
    splits = lib.forge_cpu_attention_splits(n_tiles, threads, n_blocks)
    assert splits >= 1 and n_blocks // splits >= 4
    if n_tiles < 2 * threads:
        assert n_tiles * splits >= 2 * threads
    else:
        assert splits == 1


# --- CUDA: (num_tokens, num_seqs, num_kv_heads, SMs) -> splits ---------------------------


@pytest.mark.parametrize(
    "tokens,seqs,kv_heads,sms,splits",
    [
        (1, 1, 8, 132, 16),  # H100/H200: one decode, 8 KV heads: capped at 16
        (32, 32, 8, 132, 2),  # 256 blocks < 2 x 132: double once
        (64, 64, 8, 132, 1),  # 512 blocks fill 132 SMs twice over
        (32, 32, 8, 108, 1),  # A100 (108 SMs): 256 blocks >= 216
        (4, 4, 2, 108, 16),
        (4, 4, 2, 16, 4),  # a small GPU needs fewer
        (40, 2, 8, 132, 1),  # prefill or mixed batches never split
        (0, 0, 8, 132, 1),  # nothing to do
    ],
)
def test_cuda_splits(lib, tokens, seqs, kv_heads, sms, splits):
    assert lib.forge_cuda_attention_splits(tokens, seqs, kv_heads, sms) == splits


@pytest.mark.parametrize("sms", [16, 108, 132, 144])
@pytest.mark.parametrize("items", [1, 3, 8, 64, 200, 5000])
def test_cuda_splits_are_the_smallest_power_of_two_filling_the_sms(lib, sms, items):
    splits = lib.forge_cuda_attention_splits(items, items, 1, sms)
    assert splits & (splits - 1) == 0 and 1 <= splits <= 16
    assert splits == 16 or items * splits >= 2 * sms
    assert splits == 1 or items * (splits // 2) < 2 * sms


# --- Triton: the same policy as CUDA, in Python ------------------------------------------


@pytest.mark.parametrize(
    "tokens,seqs,kv_heads,sms",
    [
        (1, 1, 8, 132),
        (32, 32, 8, 132),
        (64, 64, 8, 132),
        (32, 32, 8, 108),
        (4, 4, 2, 16),
        (40, 2, 8, 132),
        (0, 0, 8, 132),
    ],
)
def test_triton_splits_agree_with_cuda(lib, tokens, seqs, kv_heads, sms):
    triton_pa = pytest.importorskip("vllm_forge.triton.paged_attention")
    assert triton_pa.decode_splits(tokens, seqs, kv_heads, sms) == lib.forge_cuda_attention_splits(
        tokens, seqs, kv_heads, sms
    )


def test_triton_does_not_split_without_a_gpu():
    triton_pa = pytest.importorskip("vllm_forge.triton.paged_attention")
    assert triton_pa.decode_splits(1, 1, 1, 0) == 1
