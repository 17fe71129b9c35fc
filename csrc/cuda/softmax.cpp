// CUDA launchers for softmax, log_softmax and topk_softmax (kernels: cuda/kernels/softmax.cu).
#include <torch/library.h>

#include "common/call_counter.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void row_softmax(const char* op, CallCounter& counter, at::Tensor& out, const at::Tensor& input,
                 const std::optional<at::Tensor>& temperature, bool log) {
  FORGE_CHECK_CUDA_TENSOR(op, input);
  const auto args = prepare_softmax(op, out, input, temperature, log);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(input.device());
  counter.add();
  FORGE_CHECK_LAUNCH(op, cuda::softmax(cuda::dtype_of(op, input.scalar_type()), *args,
                                       cuda::current_stream(input)));
}

void softmax_cuda(at::Tensor& out, const at::Tensor& input,
                  const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("softmax");
  row_softmax("softmax", counter, out, input, temperature, false);
}

void log_softmax_cuda(at::Tensor& out, const at::Tensor& input,
                      const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("log_softmax");
  row_softmax("log_softmax", counter, out, input, temperature, true);
}

void topk_softmax_cuda(at::Tensor& topk_weights, at::Tensor& topk_ids,
                       const at::Tensor& gating_output, bool renormalize) {
  FORGE_CHECK_CUDA_TENSOR("topk_softmax", gating_output);
  const auto args = prepare_topk_softmax(topk_weights, topk_ids, gating_output, renormalize);
  if (!args) return;
  TORCH_CHECK(args->experts <= cuda::kMaxTopkExperts, "topk_softmax: at most ",
              cuda::kMaxTopkExperts, " experts on CUDA, got ", args->experts);
  const c10::cuda::CUDAGuard guard(gating_output.device());
  static CallCounter counter("topk_softmax");
  counter.add();
  FORGE_CHECK_LAUNCH("topk_softmax",
                     cuda::topk_softmax(cuda::dtype_of("topk_softmax", gating_output.scalar_type()),
                                        *args, cuda::current_stream(gating_output)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) {
  m.impl("softmax", &softmax_cuda);
  m.impl("log_softmax", &log_softmax_cuda);
  m.impl("topk_softmax", &topk_softmax_cuda);
}

}  // namespace forge
