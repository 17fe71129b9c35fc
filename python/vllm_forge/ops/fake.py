"""Fake (meta) implementations of every op, so torch.compile and vLLM's compiled mode
can trace through them. Every op here only writes into tensors it was given."""

import torch


@torch.library.register_fake("vllm_forge::reshape_and_cache")
def _reshape_and_cache_fake(key_cache, value_cache, key, value, slot_mapping) -> None:
    return None


@torch.library.register_fake("vllm_forge::paged_attention")
def _paged_attention_fake(out, query, key_cache, value_cache, query_start_loc, seq_lens,
                          block_table, scale, sliding_window, softcap) -> None:
    return None


@torch.library.register_fake("vllm_forge::rms_norm")
def _rms_norm_fake(out, input, weight, epsilon) -> None:
    return None


@torch.library.register_fake("vllm_forge::fused_add_rms_norm")
def _fused_add_rms_norm_fake(input, residual, weight, epsilon) -> None:
    return None


@torch.library.register_fake("vllm_forge::silu_and_mul")
def _silu_and_mul_fake(out, input) -> None:
    return None


@torch.library.register_fake("vllm_forge::gelu_and_mul")
def _gelu_and_mul_fake(out, input, approximate) -> None:
    return None


@torch.library.register_fake("vllm_forge::rotary_embedding")
def _rotary_embedding_fake(positions, query, key, head_size, cos_sin_cache, is_neox) -> None:
    return None


@torch.library.register_fake("vllm_forge::softmax")
def _softmax_fake(out, input, temperature) -> None:
    return None


@torch.library.register_fake("vllm_forge::log_softmax")
def _log_softmax_fake(out, input, temperature) -> None:
    return None


@torch.library.register_fake("vllm_forge::topk_softmax")
def _topk_softmax_fake(topk_weights, topk_ids, gating_output, renormalize) -> None:
    return None


@torch.library.register_fake("vllm_forge::shm_all_reduce")
def _shm_all_reduce_fake(handle, tensor) -> None:
    return None


@torch.library.register_fake("vllm_forge::shm_all_gather")
def _shm_all_gather_fake(handle, out, input) -> None:
    return None


@torch.library.register_fake("vllm_forge::shm_reduce_scatter")
def _shm_reduce_scatter_fake(handle, out, input) -> None:
    return None


@torch.library.register_fake("vllm_forge::ipc_all_reduce")
def _ipc_all_reduce_fake(buffer, out, input, two_shot) -> None:
    return None


@torch.library.register_fake("vllm_forge::ipc_group_open")
def _ipc_group_open_fake(buffer, handles, rank) -> None:
    return None


@torch.library.register_fake("vllm_forge::quant_gemm")
def _quant_gemm_fake(out, x, qweight, scales, mins, bias, bits, group_size) -> None:
    from vllm_forge.quant.format import num_groups, packed_columns

    torch._check(x.dim() == 2 and qweight.dim() == 2 and out.dim() == 2,
                 lambda: "quant_gemm: x, qweight and out must be 2-D")
    torch._check(bits in (4, 8), lambda: f"quant_gemm: bits must be 4 or 8, got {bits}")
    torch._check(qweight.shape[1] == packed_columns(x.shape[1], bits),
                 lambda: f"quant_gemm: qweight shape {list(qweight.shape)} does not match K={x.shape[1]}")
    torch._check(scales.shape[0] == qweight.shape[0]
                 and scales.shape[1] == num_groups(x.shape[1], group_size),
                 lambda: f"quant_gemm: scales shape {list(scales.shape)} does not match")
    torch._check(out.shape[0] == x.shape[0] and out.shape[1] == qweight.shape[0]
                 and out.dtype == x.dtype, lambda: "quant_gemm: out must be [M, N] in x's dtype")
    return None
