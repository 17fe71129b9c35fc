"""Pure-torch references for every op: fp32 math, the ground truth of the tests and
the provider of last resort. Clarity over speed."""

import torch


def reshape_and_cache(key_cache: torch.Tensor, value_cache: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Write key/value rows into the paged cache.

    key_cache, value_cache: [num_blocks, num_kv_heads, block_size, head_size] (updated)
    key, value: [num_tokens, num_kv_heads, head_size]
    slot_mapping: [num_tokens] int64; slot = block * block_size + offset, < 0 skips.
    """
    block_size = key_cache.shape[2]
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    blocks, offsets = slots // block_size, slots % block_size
    # Advanced indices on dims 0 and 2 put the token dim first: [n, num_kv_heads, head_size].
    key_cache[blocks, :, offsets] = key[keep]
    value_cache[blocks, :, offsets] = value[keep]


def paged_attention(out: torch.Tensor, query: torch.Tensor, key_cache: torch.Tensor,
                    value_cache: torch.Tensor, query_start_loc: torch.Tensor,
                    seq_lens: torch.Tensor, block_table: torch.Tensor, scale: float,
                    sliding_window: int = -1, softcap: float = 0.0) -> None:
    """Causal attention of each sequence's new tokens over its paged context.

    out, query: [num_tokens, num_heads, head_size]
    key_cache, value_cache: [num_blocks, num_kv_heads, block_size, head_size]
    query_start_loc: [num_seqs + 1] int32; seq_lens: [num_seqs] int32 (context + new)
    block_table: [num_seqs, max_blocks_per_seq] int32
    Query token i of a sequence is at position seq_len - q_len + i and sees keys
    p with max(0, pos - sliding_window + 1) <= p <= pos; softcap > 0 applies
    softcap * tanh(score / softcap) to the scaled scores.
    """
    num_heads = query.shape[1]
    num_kv_heads, block_size = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    starts = query_start_loc.tolist()
    for s, seq_len in enumerate(seq_lens.tolist()):
        q0, q1 = starts[s], starts[s + 1]
        q_len = q1 - q0
        if q_len == 0:
            continue
        n_blocks = (seq_len + block_size - 1) // block_size
        blocks = block_table[s, :n_blocks].long()
        # [n_blocks, kv_heads, block_size, d] -> [seq_len, kv_heads, d]
        k = key_cache[blocks].transpose(1, 2).reshape(-1, num_kv_heads, key_cache.shape[3])[:seq_len]
        v = value_cache[blocks].transpose(1, 2).reshape(-1, num_kv_heads, value_cache.shape[3])[:seq_len]
        k = k.float().repeat_interleave(group, dim=1)
        v = v.float().repeat_interleave(group, dim=1)
        q = query[q0:q1].float()
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale
        if softcap > 0:
            scores = softcap * torch.tanh(scores / softcap)
        pos = torch.arange(seq_len - q_len, seq_len).unsqueeze(1)
        key_pos = torch.arange(seq_len).unsqueeze(0)
        allowed = key_pos <= pos
        if sliding_window > 0:
            allowed &= key_pos > pos - sliding_window
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        # A masked key may hold NaN (unwritten slot); 0 * NaN would poison the sum.
        v = torch.where(allowed.any(0).view(-1, 1, 1), v, torch.zeros_like(v))
        out[q0:q1] = torch.einsum("hqk,khd->qhd", probs, v).to(out.dtype)
