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
                     const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                     bool quantize_x) {
  FORGE_CHECK_CUDA_TENSOR("quant_gemm", x);
  const auto args =
      prepare_quant_gemm(out, x, qweight, scales, mins, bias, bits, group_size, quantize_x);
  if (!args) return;
  if (quantize_x) {
    // No int8 dot-product kernel here yet: the same numbers from x's int8 rounding in fp32
    // through the fp32 kernel.
    at::Tensor out32 = at::empty(out.sizes(), out.options().dtype(at::kFloat));
    const std::optional<at::Tensor> bias32 =
        bias.has_value() ? std::optional<at::Tensor>(bias->to(at::kFloat)) : std::nullopt;
    quant_gemm_cuda(out32, quantize_x_int8(x, group_size), qweight, scales, mins, bias32, bits,
                    group_size, false);
    out.copy_(out32);
    return;
  }
  const c10::cuda::CUDAGuard guard(x.device());
  static CallCounter counter("quant_gemm");
  counter.add();
  FORGE_CHECK_LAUNCH("quant_gemm", cuda::quant_gemm(cuda::dtype_of("quant_gemm", x.scalar_type()),
                                                    *args, cuda::current_stream(x)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("quant_gemm", &quant_gemm_cuda); }

}  // namespace forge
