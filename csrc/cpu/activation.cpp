// CPU launchers for silu_and_mul and gelu_and_mul (checks: launch/activation.cpp,
// kernels: cpu/kernels/activation.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void run_gated(const char* op, Activation act, CallCounter& counter, at::Tensor& out,
               const at::Tensor& input) {
  // prepare puts every tensor on input's device; the kernel reads them on the host.
  FORGE_CHECK_CPU(op, input);
  const std::optional<GatedActivationArgs> args = prepare_gated_activation(op, out, input);
  if (!args) return;
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES(op, input.scalar_type(), scalar_t, [&] {
    const auto& k = cpu::kernels().of<scalar_t>();
    switch (act) {
      case Activation::kSilu:
        return k.silu_and_mul(*args);
      case Activation::kGelu:
        return k.gelu_and_mul(*args);
      case Activation::kGeluTanh:
        return k.gelu_tanh_and_mul(*args);
    }
  });
}

void silu_and_mul_cpu(at::Tensor& out, const at::Tensor& input) {
  static CallCounter counter("silu_and_mul");
  run_gated("silu_and_mul", Activation::kSilu, counter, out, input);
}

void gelu_and_mul_cpu(at::Tensor& out, const at::Tensor& input, c10::string_view approximate) {
  static CallCounter counter("gelu_and_mul");
  run_gated("gelu_and_mul", gelu_activation(approximate), counter, out, input);
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("silu_and_mul", &silu_and_mul_cpu);
  m.impl("gelu_and_mul", &gelu_and_mul_cpu);
}

}  // namespace forge
