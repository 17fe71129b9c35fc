// CUDA launchers for rms_norm and fused_add_rms_norm (kernels: cuda/kernels/rms_norm.cu).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void rms_norm_cuda(at::Tensor& out, const at::Tensor& input,
                   const std::optional<at::Tensor>& weight, double epsilon) {
  FORGE_CHECK_CUDA_TENSOR("rms_norm", input);
  const auto args = prepare_rms_norm(out, input, weight, epsilon);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(input.device());
  static CallCounter counter("rms_norm");
  counter.add();
  FORGE_CHECK_LAUNCH("rms_norm", cuda::rms_norm(cuda::dtype_of("rms_norm", input.scalar_type()),
                                                *args, false, cuda::current_stream(input)));
}

void fused_add_rms_norm_cuda(at::Tensor& input, at::Tensor& residual,
                             const std::optional<at::Tensor>& weight, double epsilon) {
  FORGE_CHECK_CUDA_TENSOR("fused_add_rms_norm", input);
  const auto args = prepare_fused_add_rms_norm(input, residual, weight, epsilon);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(input.device());
  static CallCounter counter("fused_add_rms_norm");
  counter.add();
  FORGE_CHECK_LAUNCH("fused_add_rms_norm",
                     cuda::rms_norm(cuda::dtype_of("fused_add_rms_norm", input.scalar_type()),
                                    *args, true, cuda::current_stream(input)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) {
  m.impl("rms_norm", &rms_norm_cuda);
  m.impl("fused_add_rms_norm", &fused_add_rms_norm_cuda);
}

}  // namespace forge
