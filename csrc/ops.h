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

// Norms, activations, rotary --------------------------------------------------------

void rms_norm_cpu(at::Tensor& out,                          // [..., hidden]
                  const at::Tensor& input,                  // [..., hidden]
                  const std::optional<at::Tensor>& weight,  // [hidden]
                  double epsilon);

void fused_add_rms_norm_cpu(at::Tensor& input,                        // [..., hidden]
                            at::Tensor& residual,                     // [..., hidden]
                            const std::optional<at::Tensor>& weight,  // [hidden]
                            double epsilon);

void silu_and_mul_cpu(at::Tensor& out,           // [..., d]
                      const at::Tensor& input);  // [..., 2 * d]

void gelu_and_mul_cpu(at::Tensor& out,          // [..., d]
                      const at::Tensor& input,  // [..., 2 * d]
                      c10::string_view approximate);

void rotary_embedding_cpu(const at::Tensor& positions,            // [num_tokens] int64
                          at::Tensor& query,                      // [num_tokens, heads(, )* head_size]
                          const std::optional<at::Tensor>& key,   // [num_tokens, kv_heads(, )* head_size]
                          int64_t head_size,
                          const at::Tensor& cos_sin_cache,        // [max_position, rot_dim]
                          bool is_neox);

// Softmax family --------------------------------------------------------------------

void softmax_cpu(at::Tensor& out,                               // [rows, cols]
                 const at::Tensor& input,                       // [rows, cols]
                 const std::optional<at::Tensor>& temperature);  // [rows] float32

void log_softmax_cpu(at::Tensor& out, const at::Tensor& input,
                     const std::optional<at::Tensor>& temperature);

void topk_softmax_cpu(at::Tensor& topk_weights,          // [rows, k] float32
                      at::Tensor& topk_ids,              // [rows, k] int32
                      const at::Tensor& gating_output,   // [rows, experts]
                      bool renormalize);

// CUDA variants (csrc/cuda/<op>.cpp): the same arguments and shapes as above ---------

void reshape_and_cache_cuda(at::Tensor& key_cache, at::Tensor& value_cache, const at::Tensor& key,
                            const at::Tensor& value, const at::Tensor& slot_mapping);
void paged_attention_cuda(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                          const at::Tensor& value_cache, const at::Tensor& query_start_loc,
                          const at::Tensor& seq_lens, const at::Tensor& block_table, double scale,
                          int64_t sliding_window, double softcap);
void rms_norm_cuda(at::Tensor& out, const at::Tensor& input,
                   const std::optional<at::Tensor>& weight, double epsilon);
void fused_add_rms_norm_cuda(at::Tensor& input, at::Tensor& residual,
                             const std::optional<at::Tensor>& weight, double epsilon);
void silu_and_mul_cuda(at::Tensor& out, const at::Tensor& input);
void gelu_and_mul_cuda(at::Tensor& out, const at::Tensor& input, c10::string_view approximate);
void rotary_embedding_cuda(const at::Tensor& positions, at::Tensor& query,
                           const std::optional<at::Tensor>& key, int64_t head_size,
                           const at::Tensor& cos_sin_cache, bool is_neox);
void softmax_cuda(at::Tensor& out, const at::Tensor& input,
                  const std::optional<at::Tensor>& temperature);
void log_softmax_cuda(at::Tensor& out, const at::Tensor& input,
                      const std::optional<at::Tensor>& temperature);
void topk_softmax_cuda(at::Tensor& topk_weights, at::Tensor& topk_ids,
                       const at::Tensor& gating_output, bool renormalize);

// Quantised matmul -------------------------------------------------------------------

void quant_gemm_cpu(at::Tensor& out,                         // [M, N]
                    const at::Tensor& x,                     // [M, K]
                    const at::Tensor& qweight,               // int8 [N, K] | uint8 [N, ceil(K/32)*16]
                    const at::Tensor& scales,                // [N, ceil(K / group_size)]
                    const std::optional<at::Tensor>& mins,   // like scales
                    const std::optional<at::Tensor>& bias,   // [N]
                    int64_t bits, int64_t group_size);
void quant_gemm_cuda(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                     const at::Tensor& scales, const std::optional<at::Tensor>& mins,
                     const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size);

}  // namespace forge
