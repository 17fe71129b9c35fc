// Host entry points of the CUDA kernels: torch-free, so the .cu files that define
// them compile in seconds. The launchers in csrc/cuda/<op>.cpp own the tensors, check
// them (csrc/launch/), and call these on the current stream. Each returns the launch
// status (cudaSuccess, or the error of the launch).
#pragma once

#include <cuda_runtime_api.h>

#include "common/dtype.h"
#include "common/kernel_args.h"

namespace forge::cuda {

using ::forge::DType;  // common/dtype.h

// topk_softmax keeps a row's probabilities in shared memory.
constexpr int kMaxTopkExperts = 8192;

// Extra state of a split-KV attention launch: scratch for the partial results.
struct AttentionSplits {
  int num_splits = 1;              // 1: no split, no scratch
  float* partial_out = nullptr;    // [num_splits, num_tokens, num_heads, head_size]
  float* partial_stats = nullptr;  // [num_splits, num_tokens, num_heads, 2]: max, sum
};

// The query tokens per work item of paged_attention: 1 for a pure decode batch.
int attention_block_q(int num_tokens, int num_seqs, int group);
// Shared memory bytes one work item needs; the launcher checks it fits the device.
size_t attention_smem_bytes(DType dtype, int block_q, int group, int head_size);

cudaError_t paged_attention(DType dtype, const PagedAttentionArgs& args, int num_tokens,
                            int block_q, const AttentionSplits& splits, cudaStream_t stream);
cudaError_t reshape_and_cache(DType dtype, const ReshapeAndCacheArgs& args, int64_t num_slots,
                              cudaStream_t stream);
cudaError_t rms_norm(DType dtype, const RmsNormArgs& args, bool fused, cudaStream_t stream);
cudaError_t gated_activation(DType dtype, Activation activation, const GatedActivationArgs& args,
                             cudaStream_t stream);
cudaError_t rotary_embedding(DType dtype, const RotaryArgs& args, int64_t max_position,
                             cudaStream_t stream);
cudaError_t softmax(DType dtype, const SoftmaxArgs& args, cudaStream_t stream);
cudaError_t topk_softmax(DType dtype, const TopkSoftmaxArgs& args, cudaStream_t stream);
// dtype: x's (and out's and bias's); the scales' type is in args.
cudaError_t quant_gemm(DType dtype, const QuantGemmArgs& args, cudaStream_t stream);

}  // namespace forge::cuda
