// rms_norm's and fused_add_rms_norm's checks and arguments, for every device. Inputs of
// any rank are normalised over the last dimension; leading dimensions must form evenly
// spaced rows (true for contiguous tensors and for q/k slices of a qkv).
#include <ATen/MemoryOverlap.h>

#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void check_weight_and_eps(const char* op, const at::Tensor& input,
                          const std::optional<at::Tensor>& weight_opt, double epsilon) {
  if (weight_opt.has_value()) {
    const at::Tensor& weight = *weight_opt;
    FORGE_CHECK_SAME_DEVICE(op, weight, input);
    TORCH_CHECK(weight.dim() == 1 && weight.size(0) == input.size(-1), op,
                ": weight must have shape [", input.size(-1), "] (input's last dimension), got ",
                shape_string(weight));
    FORGE_CHECK_SAME_DTYPE(op, weight, input);
    TORCH_CHECK(weight.size(0) <= 1 || weight.stride(0) == 1, op,
                ": weight must be contiguous, got strides ", weight.strides());
  }
  TORCH_CHECK(std::isfinite(epsilon) && epsilon >= 0, op, ": epsilon must be finite and >= 0, got ",
              epsilon);
}

}  // namespace

std::optional<RmsNormArgs> prepare_rms_norm(at::Tensor& out, const at::Tensor& input,
                                            const std::optional<at::Tensor>& weight,
                                            double epsilon) {
  TORCH_CHECK(input.dim() >= 1, "rms_norm: input must have at least 1 dimension");
  FORGE_CHECK_SAME_DEVICE("rms_norm", out, input);
  FORGE_CHECK_FLOATING("rms_norm", input);
  FORGE_CHECK_SAME_DTYPE("rms_norm", out, input);
  TORCH_CHECK(out.sizes() == input.sizes(), "rms_norm: out must have the shape of input ",
              shape_string(input), ", got ", shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("rms_norm", input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("rms_norm", out);
  check_weight_and_eps("rms_norm", input, weight, epsilon);
  FORGE_ROW_LAYOUT("rms_norm", input, in_rows);
  FORGE_ROW_LAYOUT("rms_norm", out, out_rows);
  if (input.numel() == 0) return std::nullopt;

  RmsNormArgs args{};
  args.out = out.data_ptr();
  args.out_rows = out_rows;
  args.input = const_cast<void*>(input.data_ptr());
  args.in_rows = in_rows;
  args.weight = weight.has_value() ? weight->data_ptr() : nullptr;
  args.rows = num_rows(input);
  args.hidden = input.size(-1);
  args.epsilon = static_cast<float>(epsilon);
  return args;
}

std::optional<RmsNormArgs> prepare_fused_add_rms_norm(at::Tensor& input, at::Tensor& residual,
                                                      const std::optional<at::Tensor>& weight,
                                                      double epsilon) {
  TORCH_CHECK(input.dim() >= 1, "fused_add_rms_norm: input must have at least 1 dimension");
  FORGE_CHECK_SAME_DEVICE("fused_add_rms_norm", residual, input);
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
  if (input.numel() == 0) return std::nullopt;

  RmsNormArgs args{};
  args.input = input.data_ptr();
  args.in_rows = in_rows;
  args.residual = residual.data_ptr();
  args.res_rows = res_rows;
  args.weight = weight.has_value() ? weight->data_ptr() : nullptr;
  args.rows = num_rows(input);
  args.hidden = input.size(-1);
  args.epsilon = static_cast<float>(epsilon);
  return args;
}

}  // namespace forge
