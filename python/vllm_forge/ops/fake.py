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
