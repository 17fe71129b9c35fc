// The device-agnostic half of every launcher: check each argument (messages name the op,
// the argument and the value) and fill the kernel's torch-free Args. The device launchers
// (csrc/cpu/<op>.cpp, csrc/cuda/<op>.cpp) share these, so a CPU and a CUDA call reject the
// same inputs with the same words; each launcher only checks that the op's main tensor is
// on its own device, counts the call and dispatches.
//
// Every tensor must be on the device of the op's main tensor (query, key, input or
// gating_output). Checks that read tensor values (indices, temperatures) run only on CPU
// tensors. std::nullopt: all checks passed and there is nothing to do (empty input).
#pragma once

#include <torch/types.h>

#include <optional>

#include "common/kernel_args.h"

namespace forge {

// Attention ------------------------------------------------------------------------

std::optional<PagedAttentionArgs> prepare_paged_attention(
    at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
    const at::Tensor& value_cache, const at::Tensor& query_start_loc, const at::Tensor& seq_lens,
    const at::Tensor& block_table, double scale, int64_t sliding_window, double softcap);

std::optional<ReshapeAndCacheArgs> prepare_reshape_and_cache(at::Tensor& key_cache,
                                                             at::Tensor& value_cache,
                                                             const at::Tensor& key,
                                                             const at::Tensor& value,
                                                             const at::Tensor& slot_mapping);

// Norms, activations, rotary --------------------------------------------------------

std::optional<RmsNormArgs> prepare_rms_norm(at::Tensor& out, const at::Tensor& input,
                                            const std::optional<at::Tensor>& weight,
                                            double epsilon);

std::optional<RmsNormArgs> prepare_fused_add_rms_norm(at::Tensor& input, at::Tensor& residual,
                                                      const std::optional<at::Tensor>& weight,
                                                      double epsilon);

// op: "silu_and_mul" or "gelu_and_mul", for the messages.
std::optional<GatedActivationArgs> prepare_gated_activation(const char* op, at::Tensor& out,
                                                            const at::Tensor& input);

// gelu_and_mul's `approximate`: "none" -> kGelu, "tanh" -> kGeluTanh, else an error.
Activation gelu_activation(c10::string_view approximate);

std::optional<RotaryArgs> prepare_rotary_embedding(const at::Tensor& positions, at::Tensor& query,
                                                   const std::optional<at::Tensor>& key,
                                                   int64_t head_size,
                                                   const at::Tensor& cos_sin_cache, bool is_neox);

// Softmax family --------------------------------------------------------------------

// op: "softmax" or "log_softmax", for the messages.
std::optional<SoftmaxArgs> prepare_softmax(const char* op, at::Tensor& out, const at::Tensor& input,
                                           const std::optional<at::Tensor>& temperature, bool log);

std::optional<TopkSoftmaxArgs> prepare_topk_softmax(at::Tensor& topk_weights, at::Tensor& topk_ids,
                                                    const at::Tensor& gating_output,
                                                    bool renormalize);

// Quantised matmul -------------------------------------------------------------------

// Bytes per tile of quant_gemm's tiled qweight for k weights: 16 features x k padded to 32,
// bits / 8 bytes each.
int64_t quant_tiled_columns(int64_t k, int64_t bits);

std::optional<QuantGemmArgs> prepare_quant_gemm(at::Tensor& out, const at::Tensor& x,
                                                const at::Tensor& qweight, const at::Tensor& scales,
                                                const std::optional<at::Tensor>& mins,
                                                const std::optional<at::Tensor>& bias, int64_t bits,
                                                int64_t group_size, bool quantize_x);

// x [M, K] as quant_gemm's quantize_x sees it, in fp32: rounded to int8 per block of
// min(32, group_size) k, times the block's scale (python/vllm_forge/ops/reference.py:
// quantize_x_int8). For devices whose kernel multiplies x' instead of int8 codes.
at::Tensor quantize_x_int8(const at::Tensor& x, int64_t group_size);

}  // namespace forge
