// CPU launchers for rms_norm and fused_add_rms_norm (checks: launch/rms_norm.cpp,
// kernels: cpu/kernels/rms_norm.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void rms_norm_cpu(at::Tensor& out, const at::Tensor& input, const std::optional<at::Tensor>& weight,
                  double epsilon) {
  // prepare puts every tensor on input's device; the kernel reads them on the host.
  FORGE_CHECK_CPU("rms_norm", input);
  const std::optional<RmsNormArgs> args = prepare_rms_norm(out, input, weight, epsilon);
  if (!args) return;
  static CallCounter counter("rms_norm");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("rms_norm", input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().rms_norm(*args); });
}

void fused_add_rms_norm_cpu(at::Tensor& input, at::Tensor& residual,
                            const std::optional<at::Tensor>& weight, double epsilon) {
  FORGE_CHECK_CPU("fused_add_rms_norm", input);
  const std::optional<RmsNormArgs> args =
      prepare_fused_add_rms_norm(input, residual, weight, epsilon);
  if (!args) return;
  static CallCounter counter("fused_add_rms_norm");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("fused_add_rms_norm", input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().fused_add_rms_norm(*args); });
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("rms_norm", &rms_norm_cpu);
  m.impl("fused_add_rms_norm", &fused_add_rms_norm_cpu);
}

}  // namespace forge
