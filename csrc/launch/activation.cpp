// silu_and_mul's and gelu_and_mul's checks and arguments, for every device.
#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {

std::optional<GatedActivationArgs> prepare_gated_activation(const char* op, at::Tensor& out,
                                                            const at::Tensor& input) {
  TORCH_CHECK(input.dim() >= 1, op, ": input must have at least 1 dimension");
  FORGE_CHECK_SAME_DEVICE(op, out, input);
  FORGE_CHECK_FLOATING(op, input);
  FORGE_CHECK_SAME_DTYPE(op, out, input);
  const int64_t width = input.size(-1);
  TORCH_CHECK(width % 2 == 0, op,
              ": the last dimension of input must be even (gate and up "
              "halves), got ",
              width);
  auto expected = input.sizes().vec();
  expected.back() = width / 2;
  TORCH_CHECK(out.sizes() == at::IntArrayRef(expected), op, ": out must have shape ",
              at::IntArrayRef(expected), " (input's with the last dimension halved), got ",
              shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, out);
  FORGE_ROW_LAYOUT(op, input, in_rows);
  FORGE_ROW_LAYOUT(op, out, out_rows);
  if (out.numel() == 0) return std::nullopt;

  GatedActivationArgs args{};
  args.out = out.data_ptr();
  args.out_rows = out_rows;
  args.input = input.data_ptr();
  args.in_rows = in_rows;
  args.rows = num_rows(input);
  args.d = width / 2;
  return args;
}

Activation gelu_activation(c10::string_view approximate) {
  if (approximate == "none") return Activation::kGelu;
  if (approximate == "tanh") return Activation::kGeluTanh;
  TORCH_CHECK(false, "gelu_and_mul: approximate must be 'none' or 'tanh', got '", approximate, "'");
}

}  // namespace forge
