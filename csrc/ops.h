// Host entry points of every op, one declaration each. Schemas live in
// torch_bindings.cpp; device variants are named <op>_cpu / <op>_cuda.
#pragma once

#include <torch/types.h>

namespace forge {

// Attention ------------------------------------------------------------------------

void reshape_and_cache_cpu(at::Tensor& key_cache,           // [num_blocks, num_kv_heads, block_size, head_size]
                           at::Tensor& value_cache,         // [num_blocks, num_kv_heads, block_size, head_size]
                           const at::Tensor& key,           // [num_tokens, num_kv_heads, head_size]
                           const at::Tensor& value,         // [num_tokens, num_kv_heads, head_size]
                           const at::Tensor& slot_mapping);  // [num_tokens] int64, < 0 = skip

void paged_attention_cpu(at::Tensor& out,                     // [num_tokens, num_heads, head_size]
                         const at::Tensor& query,             // [num_tokens, num_heads, head_size]
                         const at::Tensor& key_cache,         // [num_blocks, num_kv_heads, block_size, head_size]
                         const at::Tensor& value_cache,       // [num_blocks, num_kv_heads, block_size, head_size]
                         const at::Tensor& query_start_loc,   // [num_seqs + 1] int32
                         const at::Tensor& seq_lens,          // [num_seqs] int32
                         const at::Tensor& block_table,       // [num_seqs, max_blocks_per_seq] int32
                         double scale, int64_t sliding_window, double softcap);

}  // namespace forge
