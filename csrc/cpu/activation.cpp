// CPU launchers for silu_and_mul and gelu_and_mul (kernels: cpu/kernels/activation.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "ops.h"

namespace forge {
namespace {

void run_gated(const char* op, cpu::Activation act, CallCounter& counter, at::Tensor& out,
               const at::Tensor& input) {
  TORCH_CHECK(input.dim() >= 1, op, ": input must have at least 1 dimension");
  FORGE_CHECK_CPU(op, input);
  FORGE_CHECK_CPU(op, out);
  FORGE_CHECK_FLOATING(op, input);
  FORGE_CHECK_SAME_DTYPE(op, out, input);
  const int64_t width = input.size(-1);
  TORCH_CHECK(width % 2 == 0, op, ": the last dimension of input must be even (gate and up "
              "halves), got ", width);
  auto expected = input.sizes().vec();
  expected.back() = width / 2;
  TORCH_CHECK(out.sizes() == at::IntArrayRef(expected), op, ": out must have shape ", at::IntArrayRef(expected),
              " (input's with the last dimension halved), got ", shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, out);
  FORGE_ROW_LAYOUT(op, input, in_rows);
  FORGE_ROW_LAYOUT(op, out, out_rows);
  if (out.numel() == 0) return;

  cpu::GatedActivationArgs args{};
  args.out = out.data_ptr();
  args.out_rows = out_rows;
  args.input = input.data_ptr();
  args.in_rows = in_rows;
  args.rows = num_rows(input);
  args.d = width / 2;
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES(op, input.scalar_type(), scalar_t, [&] {
    const auto& k = cpu::kernels().of<scalar_t>();
    switch (act) {
      case cpu::Activation::kSilu: return k.silu_and_mul(args);
      case cpu::Activation::kGelu: return k.gelu_and_mul(args);
      case cpu::Activation::kGeluTanh: return k.gelu_tanh_and_mul(args);
    }
  });
}

}  // namespace

void silu_and_mul_cpu(at::Tensor& out, const at::Tensor& input) {
  static CallCounter counter("silu_and_mul");
  run_gated("silu_and_mul", cpu::Activation::kSilu, counter, out, input);
}

void gelu_and_mul_cpu(at::Tensor& out, const at::Tensor& input, c10::string_view approximate) {
  static CallCounter counter("gelu_and_mul");
  if (approximate == "none") {
    run_gated("gelu_and_mul", cpu::Activation::kGelu, counter, out, input);
  } else if (approximate == "tanh") {
    run_gated("gelu_and_mul", cpu::Activation::kGeluTanh, counter, out, input);
  } else {
    TORCH_CHECK(false, "gelu_and_mul: approximate must be 'none' or 'tanh', got '", approximate, "'");
  }
}

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("silu_and_mul", &silu_and_mul_cpu);
  m.impl("gelu_and_mul", &gelu_and_mul_cpu);
}

}  // namespace forge
