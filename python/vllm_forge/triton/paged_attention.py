"""paged_attention: causal varlen attention over the paged KV cache, one call for a mixed
batch of decodes, prefills and chunked prefills (the contract of vllm_forge.ops).

Work split: a program owns BLOCK_Q consecutive query tokens of one sequence times the
GROUP query heads that share one KV head (GQA packing: each K/V tile is read once for
the whole group), so its tile has BLOCK_M = BLOCK_Q * GROUP_PAD rows. It walks the keys
the block may see in tiles of TILE_N tokens, gathering rows through the block table,
with an online softmax in registers: scores never reach memory.

Decode batches too small to fill the GPU split each sequence's keys over NUM_SPLITS
programs; each writes an unnormalised partial output with its running max and sum, and
a second kernel merges them with log-sum-exp weights.

Sequences are found without a host sync: program q_block belongs to the last sequence s
with query_start_loc[s] // BLOCK_Q + s <= q_block (a binary search); that numbering
leaves each sequence at least cdiv(q_len, BLOCK_Q) blocks, the spare ones exit at once.
"""

import torch
import triton
import triton.language as tl

from vllm_forge.ops import checks
from vllm_forge.triton import MIN_DOT, interpreting, next_power_of_2
from vllm_forge.triton.jit_math import tanh

TILE_N = 32
PREFILL_BLOCK_M = 64
MAX_SPLITS = 16
# Aim for this many programs per SM before splitting a decode batch further.
PROGRAMS_PER_SM = 2


@triton.jit
def _find_sequence(query_start_loc_ptr, num_seqs, q_block, BLOCK_Q: tl.constexpr):
    # Tensors from the start, so the loop-carried types are fixed (num_seqs == 1 may
    # arrive as a constant).
    lo = tl.full([], 0, tl.int32)
    hi = lo + num_seqs - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tl.load(query_start_loc_ptr + mid) // BLOCK_Q + mid <= q_block:
            lo = mid
        else:
            hi = mid - 1
    return lo


@triton.jit
def _paged_attention_kernel(
    out_ptr,
    stride_out_token,
    stride_out_head,
    q_ptr,
    stride_q_token,
    stride_q_head,
    k_ptr,
    stride_k_block,
    stride_k_head,
    stride_k_slot,
    stride_k_dim,
    v_ptr,
    stride_v_block,
    stride_v_head,
    stride_v_slot,
    stride_v_dim,
    query_start_loc_ptr,
    seq_lens_ptr,
    block_table_ptr,
    stride_bt_seq,
    partial_out_ptr,
    partial_stats_ptr,
    num_tokens,
    num_heads,
    num_seqs,
    block_size,
    scale,
    softcap,
    sliding_window,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_M: tl.constexpr,
    HEAD_SIZE: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    TILE_N: tl.constexpr,
    NUM_SPLITS: tl.constexpr,
    USE_SOFTCAP: tl.constexpr,
    USE_WINDOW: tl.constexpr,
    DOT_FP32: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    q_block = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    seq = _find_sequence(query_start_loc_ptr, num_seqs, q_block, BLOCK_Q)
    q_start = tl.load(query_start_loc_ptr + seq)
    q_len = tl.load(query_start_loc_ptr + seq + 1) - q_start
    first_tok = (q_block - (q_start // BLOCK_Q + seq)) * BLOCK_Q
    if first_tok < q_len:
        seq_len = tl.load(seq_lens_ptr + seq)
        context = seq_len - q_len

        rows = tl.arange(0, BLOCK_M)
        tok = first_tok + rows // GROUP_PAD  # token within the sequence's chunk
        head_in_group = rows % GROUP_PAD
        row_valid = (rows // GROUP_PAD < BLOCK_Q) & (tok < q_len) & (head_in_group < GROUP)
        token = (q_start + tok).to(tl.int64)
        head = kv_head * GROUP + head_in_group
        pos = context + tok  # absolute position of each query row
        dims = tl.arange(0, HEAD_PAD)
        dim_ok = dims < HEAD_SIZE

        q = tl.load(
            q_ptr + token[:, None] * stride_q_token + head[:, None] * stride_q_head + dims[None, :],
            mask=row_valid[:, None] & dim_ok[None, :],
            other=0.0,
        )
        if DOT_FP32:
            q = q.to(tl.float32)

        # Keys this block may see: up to its last query's position, from the first
        # query's window start. Keys before that start may be stale or unwritten.
        key_end = context + tl.minimum(first_tok + BLOCK_Q, q_len)
        key_start = 0
        if USE_WINDOW:
            key_start = tl.maximum(context + first_tok - sliding_window + 1, 0)
        tiles = tl.cdiv(key_end - key_start, TILE_N)
        tiles_per_split = tl.cdiv(tiles, NUM_SPLITS)
        lo = key_start + split * tiles_per_split * TILE_N
        hi = tl.minimum(lo + tiles_per_split * TILE_N, key_end)

        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_PAD], tl.float32)
        bt_row = block_table_ptr + seq.to(tl.int64) * stride_bt_seq
        k_head = k_ptr + kv_head.to(tl.int64) * stride_k_head
        v_head = v_ptr + kv_head.to(tl.int64) * stride_v_head
        for start in range(lo, hi, TILE_N):
            kpos = start + tl.arange(0, TILE_N)
            key_ok = kpos < hi
            block = tl.load(bt_row + kpos // block_size, mask=key_ok, other=0).to(tl.int64)
            slot = kpos % block_size
            k = tl.load(
                k_head
                + block[None, :] * stride_k_block
                + slot[None, :] * stride_k_slot
                + dims[:, None] * stride_k_dim,
                mask=dim_ok[:, None] & key_ok[None, :],
                other=0.0,
            )  # [HEAD_PAD, TILE_N]
            v = tl.load(
                v_head
                + block[:, None] * stride_v_block
                + slot[:, None] * stride_v_slot
                + dims[None, :] * stride_v_dim,
                mask=key_ok[:, None] & dim_ok[None, :],
                other=0.0,
            )  # [TILE_N, HEAD_PAD]
            if DOT_FP32:
                k = k.to(tl.float32)
                v = v.to(tl.float32)
            s = tl.dot(q, k, input_precision=DOT_PRECISION) * scale
            if USE_SOFTCAP:
                s = softcap * tanh(s / softcap)
            allowed = key_ok[None, :] & (kpos[None, :] <= pos[:, None])
            if USE_WINDOW:
                allowed &= kpos[None, :] > pos[:, None] - sliding_window
            s = tl.where(allowed, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing yet
            p = tl.exp(s - m_safe[:, None])
            alpha = tl.exp(m_i - m_safe)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
            m_i = m_new

        if NUM_SPLITS == 1:
            # Every query sees at least its own key, so l_i = 0 only when each score it
            # sees is -inf (an inf in q or k): 0 / 0 = NaN there, as in the reference.
            # Padding rows (never stored) divide by 1, keeping the interpreter quiet.
            out = acc / tl.where(row_valid, l_i, 1.0)[:, None]
            tl.store(
                out_ptr
                + token[:, None] * stride_out_token
                + head[:, None] * stride_out_head
                + dims[None, :],
                out.to(out_ptr.dtype.element_ty),
                mask=row_valid[:, None] & dim_ok[None, :],
            )
        else:
            # partial_out [NUM_SPLITS, num_tokens, num_heads, HEAD_PAD], stats [.., 2]
            part = (split * num_tokens + token) * num_heads + head
            tl.store(
                partial_out_ptr + part[:, None] * HEAD_PAD + dims[None, :],
                acc,
                mask=row_valid[:, None],
            )
            tl.store(partial_stats_ptr + part * 2, m_i, mask=row_valid)
            tl.store(partial_stats_ptr + part * 2 + 1, l_i, mask=row_valid)


@triton.jit
def _merge_splits_kernel(
    out_ptr,
    stride_out_token,
    stride_out_head,
    partial_out_ptr,
    partial_stats_ptr,
    num_tokens,
    num_heads,
    HEAD_SIZE: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    NUM_SPLITS: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    splits = tl.arange(0, NUM_SPLITS)
    part = (splits * num_tokens + token) * num_heads + head
    m = tl.load(partial_stats_ptr + part * 2)
    sums = tl.load(partial_stats_ptr + part * 2 + 1)
    m_max = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - m_max))  # empty splits weigh nothing
    dims = tl.arange(0, HEAD_PAD)
    acc = tl.load(partial_out_ptr + part[:, None] * HEAD_PAD + dims[None, :])
    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(sums * w, axis=0)
    tl.store(
        out_ptr + token * stride_out_token + head * stride_out_head + dims,
        out.to(out_ptr.dtype.element_ty),
        mask=dims < HEAD_SIZE,
    )


def decode_splits(num_tokens: int, num_seqs: int, num_kv_heads: int, sms: int) -> int:
    """How many pieces each sequence's keys are cut into (the Triton backend's split
    policy; the native ones are in csrc/common/split_heuristics.h).

    Only pure decode batches (one query token per sequence) split: there num_seqs x
    num_kv_heads programs may leave most of the `sms` streaming multiprocessors idle. The
    smallest power of two giving PROGRAMS_PER_SM programs per SM, at most MAX_SPLITS;
    1 when sms is 0 (not a GPU).
    """
    if num_tokens != num_seqs or num_seqs <= 0 or sms <= 0:
        return 1
    want = triton.cdiv(PROGRAMS_PER_SM * sms, max(1, num_seqs * num_kv_heads))
    return min(MAX_SPLITS, next_power_of_2(want))


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 0
    return torch.cuda.get_device_properties(device).multi_processor_count


def paged_attention(
    out: torch.Tensor,
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    scale: float,
    sliding_window: int = -1,
    softcap: float = 0.0,
    num_splits: int | None = None,
) -> None:
    """See vllm_forge.ops.reference.paged_attention. num_splits (a power of two) forces the
    split-KV path; by default it is chosen from the batch and the GPU."""
    checks.paged_attention(
        out,
        query,
        key_cache,
        value_cache,
        query_start_loc,
        seq_lens,
        block_table,
        scale,
        sliding_window,
        softcap,
    )
    num_tokens, num_heads, head_size = query.shape
    num_seqs = seq_lens.shape[0]
    if num_tokens == 0 or num_seqs == 0:
        return
    num_kv_heads, block_size = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    group_pad = next_power_of_2(group)
    decode_only = num_tokens == num_seqs
    block_m = max(MIN_DOT, group_pad if decode_only else max(PREFILL_BLOCK_M, group_pad))
    block_q = max(1, block_m // group_pad)
    if num_splits is None:
        num_splits = decode_splits(num_tokens, num_seqs, num_kv_heads, _sm_count(query.device))
    checks.check(
        num_splits >= 1 and num_splits & (num_splits - 1) == 0,
        "paged_attention",
        f"num_splits must be a power of two, got {num_splits}",
    )
    head_pad = max(MIN_DOT, next_power_of_2(head_size))
    partial_out = partial_stats = out  # unused unless split
    if num_splits > 1:
        partial_out = torch.empty(
            num_splits, num_tokens, num_heads, head_pad, dtype=torch.float32, device=query.device
        )
        partial_stats = torch.empty(
            num_splits, num_tokens, num_heads, 2, dtype=torch.float32, device=query.device
        )
    grid = (num_tokens // block_q + num_seqs, num_kv_heads, num_splits)
    _paged_attention_kernel[grid](
        out,
        out.stride(0),
        out.stride(1),
        query,
        query.stride(0),
        query.stride(1),
        key_cache,
        *key_cache.stride(),
        value_cache,
        *value_cache.stride(),
        query_start_loc,
        seq_lens,
        block_table,
        block_table.stride(0),
        partial_out,
        partial_stats,
        num_tokens,
        num_heads,
        num_seqs,
        block_size,
        float(scale),
        float(softcap),
        int(sliding_window),
        GROUP=group,
        GROUP_PAD=group_pad,
        BLOCK_Q=block_q,
        BLOCK_M=block_m,
        HEAD_SIZE=head_size,
        HEAD_PAD=head_pad,
        TILE_N=TILE_N,
        NUM_SPLITS=num_splits,
        USE_SOFTCAP=softcap > 0,
        USE_WINDOW=sliding_window > 0,
        # Triton's interpreter gets bf16 tl.dot wrong (3.9): multiply in fp32 there.
        DOT_FP32=interpreting(),
        # fp32 inputs get fp32 products (tf32 would miss the fp32 tolerance by far).
        DOT_PRECISION="ieee" if query.dtype == torch.float32 or interpreting() else "tf32",
    )
    if num_splits > 1:
        _merge_splits_kernel[(num_tokens, num_heads)](
            out,
            out.stride(0),
            out.stride(1),
            partial_out,
            partial_stats,
            num_tokens,
            num_heads,
            HEAD_SIZE=head_size,
            HEAD_PAD=head_pad,
            NUM_SPLITS=num_splits,
        )
