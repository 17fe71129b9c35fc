// CUDA launcher for quant_gemm (checks: launch/quant_gemm.cpp, kernel:
// cuda/kernels/quant_gemm.cu, which has not yet run on a GPU: see its header).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void quant_gemm_cuda(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                     const at::Tensor& scales, const std::optional<at::Tensor>& mins,
                     const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size) {
  FORGE_CHECK_CUDA_TENSOR("quant_gemm", x);
  const auto args = prepare_quant_gemm(out, x, qweight, scales, mins, bias, bits, group_size);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(x.device());
  static CallCounter counter("quant_gemm");
  counter.add();
  FORGE_CHECK_LAUNCH("quant_gemm", cuda::quant_gemm(cuda::dtype_of("quant_gemm", x.scalar_type()),
                                                    *args, cuda::current_stream(x)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("quant_gemm", &quant_gemm_cuda); }

}  // namespace forge
