// CUDA launchers for silu_and_mul and gelu_and_mul (kernels: cuda/kernels/activation.cu).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void gated(const char* op, CallCounter& counter, Activation activation, at::Tensor& out,
           const at::Tensor& input) {
  FORGE_CHECK_CUDA_TENSOR(op, input);
  const auto args = prepare_gated_activation(op, out, input);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(input.device());
  counter.add();
  FORGE_CHECK_LAUNCH(op, cuda::gated_activation(cuda::dtype_of(op, input.scalar_type()), activation,
                                                *args, cuda::current_stream(input)));
}

void silu_and_mul_cuda(at::Tensor& out, const at::Tensor& input) {
  static CallCounter counter("silu_and_mul");
  gated("silu_and_mul", counter, Activation::kSilu, out, input);
}

void gelu_and_mul_cuda(at::Tensor& out, const at::Tensor& input, c10::string_view approximate) {
  static CallCounter counter("gelu_and_mul");
  gated("gelu_and_mul", counter, gelu_activation(approximate), out, input);
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) {
  m.impl("silu_and_mul", &silu_and_mul_cuda);
  m.impl("gelu_and_mul", &gelu_and_mul_cuda);
}

}  // namespace forge
