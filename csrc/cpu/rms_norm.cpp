// CPU launchers for rms_norm and fused_add_rms_norm (kernels: cpu/kernels/rms_norm.h).
// Inputs of any rank are normalised over the last dimension; leading dimensions must
// form evenly spaced rows (true for contiguous tensors and for q/k slices of a qkv).
#include <ATen/MemoryOverlap.h>
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "ops.h"

namespace forge {
namespace {

void check_weight_and_eps(const char* op, const at::Tensor& input,
                          const std::optional<at::Tensor>& weight, double epsilon) {
  if (weight.has_value()) {
    const at::Tensor& w = *weight;
    TORCH_CHECK(w.device() == input.device(), op, ": weight must be on ", input.device(),
                ", got ", w.device());
    TORCH_CHECK(w.dim() == 1 && w.size(0) == input.size(-1), op, ": weight must have shape [",
                input.size(-1), "] (input's last dimension), got ", shape_string(w));
    TORCH_CHECK(w.scalar_type() == input.scalar_type(), op,
                ": weight must have the dtype of input (", input.scalar_type(), "), got ",
                w.scalar_type());
    TORCH_CHECK(w.size(0) <= 1 || w.stride(0) == 1, op,
                ": weight must be contiguous, got strides ", w.strides());
  }
  TORCH_CHECK(std::isfinite(epsilon) && epsilon >= 0, op,
              ": epsilon must be finite and >= 0, got ", epsilon);
}

}  // namespace

void rms_norm_cpu(at::Tensor& out, const at::Tensor& input, const std::optional<at::Tensor>& weight,
                  double epsilon) {
  TORCH_CHECK(input.dim() >= 1, "rms_norm: input must have at least 1 dimension");
  FORGE_CHECK_CPU("rms_norm", input);
  FORGE_CHECK_CPU("rms_norm", out);
  FORGE_CHECK_FLOATING("rms_norm", input);
  FORGE_CHECK_SAME_DTYPE("rms_norm", out, input);
  TORCH_CHECK(out.sizes() == input.sizes(), "rms_norm: out must have the shape of input ",
              shape_string(input), ", got ", shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("rms_norm", input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("rms_norm", out);
  check_weight_and_eps("rms_norm", input, weight, epsilon);
  FORGE_ROW_LAYOUT("rms_norm", input, in_rows);
  FORGE_ROW_LAYOUT("rms_norm", out, out_rows);
  if (input.numel() == 0) return;

  cpu::RmsNormArgs args{};
  args.out = out.data_ptr();
  args.out_rows = out_rows;
  args.input = const_cast<void*>(input.data_ptr());
  args.in_rows = in_rows;
  args.weight = weight.has_value() ? weight->data_ptr() : nullptr;
  args.rows = num_rows(input);
  args.hidden = input.size(-1);
  args.epsilon = static_cast<float>(epsilon);
  static CallCounter counter("rms_norm");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("rms_norm", input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().rms_norm(args); });
}

void fused_add_rms_norm_cpu(at::Tensor& input, at::Tensor& residual,
                            const std::optional<at::Tensor>& weight, double epsilon) {
  TORCH_CHECK(input.dim() >= 1, "fused_add_rms_norm: input must have at least 1 dimension");
  FORGE_CHECK_CPU("fused_add_rms_norm", input);
  FORGE_CHECK_CPU("fused_add_rms_norm", residual);
  FORGE_CHECK_FLOATING("fused_add_rms_norm", input);
  FORGE_CHECK_SAME_DTYPE("fused_add_rms_norm", residual, input);
  TORCH_CHECK(residual.sizes() == input.sizes(),
              "fused_add_rms_norm: residual must have the shape of input ", shape_string(input),
              ", got ", shape_string(residual));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("fused_add_rms_norm", input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("fused_add_rms_norm", residual);
  check_weight_and_eps("fused_add_rms_norm", input, weight, epsilon);
  const auto overlap = at::get_overlap_status(input, residual);
  TORCH_CHECK(overlap == at::MemOverlapStatus::No ||
                  (overlap == at::MemOverlapStatus::TooHard && !input.is_alias_of(residual)),
              "fused_add_rms_norm: input and residual must not share memory (both are written)");
  FORGE_ROW_LAYOUT("fused_add_rms_norm", input, in_rows);
  FORGE_ROW_LAYOUT("fused_add_rms_norm", residual, res_rows);
  if (input.numel() == 0) return;

  cpu::RmsNormArgs args{};
  args.input = input.data_ptr();
  args.in_rows = in_rows;
  args.residual = residual.data_ptr();
  args.res_rows = res_rows;
  args.weight = weight.has_value() ? weight->data_ptr() : nullptr;
  args.rows = num_rows(input);
  args.hidden = input.size(-1);
  args.epsilon = static_cast<float>(epsilon);
  static CallCounter counter("fused_add_rms_norm");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("fused_add_rms_norm", input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().fused_add_rms_norm(args); });
}

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("rms_norm", &rms_norm_cpu);
  m.impl("fused_add_rms_norm", &fused_add_rms_norm_cpu);
}

}  // namespace forge
