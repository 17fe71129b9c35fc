// CUDA launcher for rotary_embedding (kernel: cuda/kernels/rotary_embedding.cu).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void rotary_embedding_cuda(const at::Tensor& positions, at::Tensor& query,
                           const std::optional<at::Tensor>& key, int64_t head_size,
                           const at::Tensor& cos_sin_cache, bool is_neox) {
  FORGE_CHECK_CUDA_TENSOR("rotary_embedding", query);
  const auto args =
      prepare_rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(query.device());
  static CallCounter counter("rotary_embedding");
  counter.add();
  FORGE_CHECK_LAUNCH(
      "rotary_embedding",
      cuda::rotary_embedding(cuda::dtype_of("rotary_embedding", query.scalar_type()), *args,
                             cos_sin_cache.size(0), cuda::current_stream(query)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("rotary_embedding", &rotary_embedding_cuda); }

}  // namespace forge
