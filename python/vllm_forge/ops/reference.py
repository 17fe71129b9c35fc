"""Pure-torch references for every op: fp32 math, the ground truth of the tests and
the provider of last resort. Clarity over speed. Each first runs the native op's argument
checks (vllm_forge.ops.checks, vllm_forge.quant.checks), so a call the compiled kernel
refuses is refused here with the same RuntimeError."""

import torch

from vllm_forge.ops import checks
from vllm_forge.quant import checks as quant_checks


def reshape_and_cache(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Write key/value rows into the paged cache.

    key_cache, value_cache: [num_blocks, num_kv_heads, block_size, head_size] (updated)
    key, value: [num_tokens, num_kv_heads, head_size]
    slot_mapping: [num_tokens] int64; slot = block * block_size + offset, < 0 skips.
    """
    checks.reshape_and_cache(key_cache, value_cache, key, value, slot_mapping)
    block_size = key_cache.shape[2]
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    blocks, offsets = slots // block_size, slots % block_size
    # Advanced indices on dims 0 and 2 put the token dim first: [n, num_kv_heads, head_size].
    key_cache[blocks, :, offsets] = key[keep]
    value_cache[blocks, :, offsets] = value[keep]


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
) -> None:
    """Causal attention of each sequence's new tokens over its paged context.

    out, query: [num_tokens, num_heads, head_size]
    key_cache, value_cache: [num_blocks, num_kv_heads, block_size, head_size]
    query_start_loc: [num_seqs + 1] int32; seq_lens: [num_seqs] int32 (context + new)
    block_table: [num_seqs, max_blocks_per_seq] int32
    Query token i of a sequence is at position seq_len - q_len + i and sees keys
    p with max(0, pos - sliding_window + 1) <= p <= pos; softcap > 0 applies
    softcap * tanh(score / softcap) to the scaled scores.
    """
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
        k = (
            key_cache[blocks]
            .transpose(1, 2)
            .reshape(-1, num_kv_heads, key_cache.shape[3])[:seq_len]
        )
        v = (
            value_cache[blocks]
            .transpose(1, 2)
            .reshape(-1, num_kv_heads, value_cache.shape[3])[:seq_len]
        )
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
        out[q0:q1] = _weighted_values(probs, v, allowed).to(out.dtype)


def _weighted_values(probs: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """sum_k probs[h, q, k] * v[k, h, :] over the keys query q may see (allowed [q, k]).

    A key a query may not see must not reach it even as 0 * NaN (0 * inf): a masked slot
    may be unwritten (NaN), and a later token's value is not an earlier token's business.
    Slots no query sees are zeroed; the few non-finite values left are added apart, each
    only to the queries that see it.
    """
    v = torch.where(allowed.any(0).view(-1, 1, 1), v, torch.zeros_like(v))
    finite = torch.isfinite(v)
    out = torch.einsum("hqk,khd->qhd", probs, torch.where(finite, v, torch.zeros_like(v)))
    key, head, dim = (~finite).nonzero().unbind(1)  # each [n]
    if key.numel():
        terms = torch.where(allowed[:, key], probs[head, :, key].t() * v[key, head, dim], 0.0)
        out.view(out.shape[0], -1).index_add_(1, head * v.shape[2] + dim, terms)
    return out


def rms_norm(
    out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    """out = input / sqrt(mean(input^2) + epsilon) * weight over the last dim; [..., hidden]."""
    checks.rms_norm(out, input, weight, epsilon)
    _rms_norm(out, input.float(), weight, epsilon)


def _rms_norm(
    out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + epsilon)
    if weight is not None:
        y = y * weight.float()
    out.copy_(y)


def fused_add_rms_norm(
    input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    """residual <- input + residual; input <- rms_norm of the (unrounded) sum."""
    checks.fused_add_rms_norm(input, residual, weight, epsilon)
    total = input.float() + residual.float()
    residual.copy_(total)
    _rms_norm(input, total, weight, epsilon)


def silu_and_mul(out: torch.Tensor, input: torch.Tensor) -> None:
    """out = silu(input[..., :d]) * input[..., d:]; input [..., 2d], out [..., d]."""
    checks.gated_activation("silu_and_mul", out, input)
    d = input.shape[-1] // 2
    x = input.float()
    out.copy_(torch.nn.functional.silu(x[..., :d]) * x[..., d:])


def gelu_and_mul(out: torch.Tensor, input: torch.Tensor, approximate: str) -> None:
    """out = gelu(input[..., :d], approximate) * input[..., d:]; approximate 'none' | 'tanh'."""
    checks.gelu_approximate(approximate)  # before the tensors, as the native op does
    checks.gated_activation("gelu_and_mul", out, input)
    d = input.shape[-1] // 2
    x = input.float()
    out.copy_(torch.nn.functional.gelu(x[..., :d], approximate=approximate) * x[..., d:])


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor | None,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> None:
    """Rotate the first rot_dim = cos_sin_cache.shape[1] dims of each head, in place.

    positions [T] int64; query [T, H * head_size] or [T, H, head_size]; key likewise or
    None; cos_sin_cache [max_position, rot_dim] = cos (rot_dim/2) | sin (rot_dim/2).
    """
    checks.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox)
    rot_dim = cos_sin_cache.shape[1]
    cos, sin = cos_sin_cache[positions].float().chunk(2, dim=-1)  # [T, rot_dim/2]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    for x in (query, key):
        if x is None:
            continue
        # Not view(T, -1, head_size): with no tokens or no heads, -1 is ambiguous.
        heads = x if x.dim() == 3 else x.view(x.shape[0], x.shape[1] // head_size, head_size)
        rot = heads[..., :rot_dim].float()
        if is_neox:
            x1, x2 = rot.chunk(2, dim=-1)
            rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
        else:
            x1, x2 = rot[..., 0::2], rot[..., 1::2]
            rotated = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
        heads[..., :rot_dim] = rotated.to(x.dtype)


def softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    """out = softmax(input / temperature[:, None], dim=-1); input [rows, cols]."""
    checks.softmax("softmax", out, input, temperature)
    x = input.float()
    if temperature is not None:
        x = x / temperature.float().unsqueeze(1)
    out.copy_(torch.softmax(x, dim=-1))


def log_softmax(out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None) -> None:
    """out = log_softmax(input / temperature[:, None], dim=-1); input [rows, cols]."""
    checks.softmax("log_softmax", out, input, temperature)
    x = input.float()
    if temperature is not None:
        x = x / temperature.float().unsqueeze(1)
    out.copy_(torch.log_softmax(x, dim=-1))


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    gating_output: torch.Tensor,
    renormalize: bool,
) -> None:
    """topk_weights [rows, k] float32, topk_ids [rows, k] int32 <- the k largest of
    softmax(gating_output [rows, experts]), optionally renormalised to sum to 1."""
    checks.topk_softmax(topk_weights, topk_ids, gating_output, renormalize)
    probs = torch.softmax(gating_output.float(), dim=-1)
    weights, ids = probs.topk(topk_weights.shape[1], dim=-1)
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    topk_weights.copy_(weights)
    topk_ids.copy_(ids.to(torch.int32))


def quant_gemm(
    out: torch.Tensor,
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    mins: torch.Tensor | None,
    bias: torch.Tensor | None,
    bits: int,
    group_size: int,
    quantize_x: bool = False,
) -> None:
    """Weight-only quantised matmul: out = x @ W^T (+ bias), in fp32.

    out: [M, N] (x's dtype); x: [M, K]; bias: [N]
    qweight: the tiled form, int8 (bits 8) | uint8 (bits 4) [ceil(N/16), bytes per tile]
    scales, mins: float32 | float16 [ceil(N/16), ceil(K / group_size), 16]
    W [N, K] = scales * codes + mins per group (python/vllm_forge/quant/format.py).
    quantize_x: x is first replaced by its int8 rounding, quant.activations.quantize_x_int8.
    """
    from vllm_forge.quant.activations import quantize_x_int8
    from vllm_forge.quant.format import TiledWeight

    quant_checks.quant_gemm(out, x, qweight, scales, mins, bias, bits, group_size)
    (m, k), n = x.shape, out.shape[1]
    if m == 0 or n == 0:
        return
    tiled = TiledWeight(qweight, scales, mins, bits, group_size, k, n)
    # With K = 0 the sums are empty (and there is no weight to unpack).
    w = tiled.dequantize() if k else torch.zeros(n, 0, device=x.device)
    y = (quantize_x_int8(x, group_size) if quantize_x else x.float()) @ w.t()
    if bias is not None:
        y = y + bias.float()
    out.copy_(y)
