"""Shared test helpers: paged KV batches with poisoned unused slots, tolerances, and
moving seeded CPU-built inputs to the device a test runs on."""

from dataclasses import dataclass

import torch

from vllm_forge.attention.kv_layout import empty_kv_cache, split_kv_cache

# Kernels compute in fp32 and round once on store; these cover that rounding.
TOLERANCES = {
    torch.float32: dict(atol=2e-5, rtol=2e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2),
}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# Block-table entries past a sequence's last block: out of range on purpose, so a
# kernel that reads them fails loudly instead of quietly using block 0.
UNUSED_BLOCK_ID = 2**30


def on_default_device(t: torch.Tensor) -> torch.Tensor:
    """t on the current default device (the test's device), with its strides kept: the
    kernels must meet the same strided views there as on the CPU."""
    device = torch.get_default_device()
    if t.device == device:
        return t
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)
    return out.copy_(t)


@dataclass
class PagedBatch:
    query: torch.Tensor  # [num_tokens, num_heads, head_size], maybe strided
    key_cache: torch.Tensor  # [num_blocks, num_kv_heads, block_size, head_size]
    value_cache: torch.Tensor
    query_start_loc: torch.Tensor  # [num_seqs + 1] int32
    seq_lens: torch.Tensor  # [num_seqs] int32
    block_table: torch.Tensor  # [num_seqs, max_blocks] int32

    def args(self, out, scale, sliding_window=-1, softcap=0.0):
        return (
            out,
            self.query,
            self.key_cache,
            self.value_cache,
            self.query_start_loc,
            self.seq_lens,
            self.block_table,
            scale,
            sliding_window,
            softcap,
        )


def make_paged_batch(seqs, **kwargs) -> PagedBatch:
    """See _make_paged_batch_on_cpu; built there (seeded CPU generator), then moved to the
    default device with every stride kept."""
    with torch.device("cpu"):
        batch = _make_paged_batch_on_cpu(seqs, **kwargs)
    return PagedBatch(
        *(
            on_default_device(t)
            for t in (
                batch.query,
                batch.key_cache,
                batch.value_cache,
                batch.query_start_loc,
                batch.seq_lens,
                batch.block_table,
            )
        )
    )


def _make_paged_batch_on_cpu(
    seqs,
    *,
    num_heads,
    num_kv_heads,
    head_size,
    block_size,
    dtype,
    strided_query=False,
    poison=True,
    sliding_window=-1,
    seed=0,
    kv_layout="vllm",
) -> PagedBatch:
    """seqs: list of (q_len, seq_len). Blocks are scattered at random over a pool with
    spare blocks; every slot no sequence may read is NaN when `poison` is set (with a
    sliding window, that includes the slots before every query's window).

    kv_layout="vllm": key and value caches carved from one vLLM-shaped cache tensor, as
    FORGE_ATTN does (vllm_forge.attention.kv_layout); "separate": two tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = [(s + block_size - 1) // block_size for _, s in seqs]
    num_blocks = sum(blocks_per_seq) + 3
    fill = float("nan") if poison else 0.0
    if kv_layout == "vllm":
        kv = empty_kv_cache(num_blocks, num_kv_heads, block_size, head_size, dtype, fill)
        key_cache, value_cache = split_kv_cache(kv)
    else:  # keys transposed per block, as the kernel requires, but in their own tensor
        key_cache = torch.full(
            (num_blocks, num_kv_heads, head_size, block_size), fill, dtype=dtype
        ).transpose(2, 3)
        value_cache = torch.full(
            (num_blocks, num_kv_heads, block_size, head_size), fill, dtype=dtype
        )
    perm = torch.randperm(num_blocks, generator=gen)
    max_blocks = max(blocks_per_seq) + 1
    block_table = torch.full((len(seqs), max_blocks), UNUSED_BLOCK_ID, dtype=torch.int32)
    used = 0
    for i, ((q_len, seq_len), n) in enumerate(zip(seqs, blocks_per_seq)):
        assert q_len <= seq_len
        ids = perm[used : used + n]
        used += n
        block_table[i, :n] = ids.to(torch.int32)
        first_readable = 0
        if sliding_window > 0:
            first_readable = max(0, seq_len - q_len - sliding_window + 1)
        for pos in range(first_readable, seq_len):
            b, off = int(ids[pos // block_size]), pos % block_size
            key_cache[b, :, off] = torch.randn(num_kv_heads, head_size, generator=gen).to(dtype)
            value_cache[b, :, off] = torch.randn(num_kv_heads, head_size, generator=gen).to(dtype)
    q_lens = [q for q, _ in seqs]
    num_tokens = sum(q_lens)
    if strided_query:  # a slice of a packed qkv projection, as vLLM passes it
        qkv = torch.randn(num_tokens, (num_heads + 2 * num_kv_heads) * head_size, generator=gen)
        query = qkv.to(dtype)[:, : num_heads * head_size].view(num_tokens, num_heads, head_size)
    else:
        query = torch.randn(num_tokens, num_heads, head_size, generator=gen).to(dtype)
    qsl = torch.zeros(len(seqs) + 1, dtype=torch.int32)
    qsl[1:] = torch.tensor(q_lens).cumsum(0)
    return PagedBatch(
        query,
        key_cache,
        value_cache,
        qsl,
        torch.tensor([s for _, s in seqs], dtype=torch.int32),
        block_table,
    )


def quantized_weight(
    n: int, k: int, bits: int, group: int, with_mins: bool, scale_dtype: torch.dtype, seed: int = 0
):
    """A random [n, k] weight in the tiled form quant_gemm reads (a TiledWeight; round to
    nearest). with_mins=False: the symmetric codes times the scales only (int4 loses its
    -8 s mins)."""
    from vllm_forge.quant.format import PackedWeight, quantize_rtn

    g = torch.Generator().manual_seed(seed)
    p = quantize_rtn(
        torch.randn(n, k, generator=g),
        bits,
        group,
        symmetric=not with_mins,
        scale_dtype=scale_dtype,
    )
    if not with_mins and p.mins is not None:
        p = PackedWeight(p.qweight, p.scales, None, bits, group, k)
    return p.tiled()


def assert_within_term_bound(
    out: torch.Tensor,
    ref: torch.Tensor,
    x: torch.Tensor,
    packed,
    bias: torch.Tensor | None,
    rel_tol: float,
) -> None:
    """|out - ref| <= rel_tol * (|x| @ |W|^T + |bias|) elementwise: the error allowed relative
    to the size of the terms summed, not of their (possibly cancelling) sum."""
    size = x.float().abs() @ packed.dequantize().abs().t()
    if bias is not None:
        size = size + bias.float().abs()
    err = (out.cpu().float() - ref.float()).abs()
    bound = rel_tol * size + torch.finfo(x.dtype).tiny
    assert (err <= bound).all(), f"max err {err.max():.3g}, worst ratio {(err / bound).max():.3g}"
