// CUDA launcher for reshape_and_cache (kernel: cuda/kernels/reshape_and_cache.cu).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void reshape_and_cache_cuda(at::Tensor& key_cache, at::Tensor& value_cache, const at::Tensor& key,
                            const at::Tensor& value, const at::Tensor& slot_mapping) {
  FORGE_CHECK_CUDA_TENSOR("reshape_and_cache", key);
  const auto args = prepare_reshape_and_cache(key_cache, value_cache, key, value, slot_mapping);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(key.device());
  static CallCounter counter("reshape_and_cache");
  counter.add();
  FORGE_CHECK_LAUNCH(
      "reshape_and_cache",
      cuda::reshape_and_cache(cuda::dtype_of("reshape_and_cache", key.scalar_type()), *args,
                              key_cache.size(0) * key_cache.size(2), cuda::current_stream(key)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("reshape_and_cache", &reshape_and_cache_cuda); }

}  // namespace forge
