// CPU launchers for softmax, log_softmax and topk_softmax (checks: launch/softmax.cpp,
// kernels: cpu/kernels/softmax.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void run_softmax(const char* op, CallCounter& counter, at::Tensor& out, const at::Tensor& input,
                 const std::optional<at::Tensor>& temperature, bool log) {
  // prepare puts every tensor on input's device (and validates the temperatures there
  // only when it is the CPU); the kernel reads them on the host.
  FORGE_CHECK_CPU(op, input);
  const std::optional<SoftmaxArgs> args = prepare_softmax(op, out, input, temperature, log);
  if (!args) return;
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES(op, input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().softmax(*args); });
}

void softmax_cpu(at::Tensor& out, const at::Tensor& input,
                 const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("softmax");
  run_softmax("softmax", counter, out, input, temperature, false);
}

void log_softmax_cpu(at::Tensor& out, const at::Tensor& input,
                     const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("log_softmax");
  run_softmax("log_softmax", counter, out, input, temperature, true);
}

void topk_softmax_cpu(at::Tensor& topk_weights, at::Tensor& topk_ids,
                      const at::Tensor& gating_output, bool renormalize) {
  FORGE_CHECK_CPU("topk_softmax", gating_output);
  const std::optional<TopkSoftmaxArgs> args =
      prepare_topk_softmax(topk_weights, topk_ids, gating_output, renormalize);
  if (!args) return;
  static CallCounter counter("topk_softmax");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("topk_softmax", gating_output.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().topk_softmax(*args); });
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("softmax", &softmax_cpu);
  m.impl("log_softmax", &log_softmax_cpu);
  m.impl("topk_softmax", &topk_softmax_cpu);
}

}  // namespace forge
