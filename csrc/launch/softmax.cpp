// softmax's, log_softmax's and topk_softmax's checks and arguments, for every device.
#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {

std::optional<SoftmaxArgs> prepare_softmax(const char* op, at::Tensor& out, const at::Tensor& input,
                                           const std::optional<at::Tensor>& temperature_opt,
                                           bool log) {
  TORCH_CHECK(input.dim() == 2, op, ": input must be a 2-D tensor [rows, cols], got shape ",
              shape_string(input));
  FORGE_CHECK_SAME_DEVICE(op, out, input);
  FORGE_CHECK_FLOATING(op, input);
  FORGE_CHECK_SAME_DTYPE(op, out, input);
  TORCH_CHECK(out.sizes() == input.sizes(), op, ": out must have the shape of input ",
              shape_string(input), ", got ", shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, input);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, out);
  TORCH_CHECK(input.size(1) > 0 || input.size(0) == 0, op,
              ": input must have at least one column, got shape ", shape_string(input));
  const float* temp = nullptr;
  if (temperature_opt.has_value()) {
    const at::Tensor& temperature = *temperature_opt;
    FORGE_CHECK_SAME_DEVICE(op, temperature, input);
    FORGE_CHECK_DTYPE(op, temperature, at::kFloat);
    TORCH_CHECK(temperature.dim() == 1 && temperature.size(0) == input.size(0), op,
                ": temperature must have shape [", input.size(0), "] (one per row), got ",
                shape_string(temperature));
    FORGE_CHECK_CONTIGUOUS(op, temperature);
    temp = temperature.data_ptr<float>();
    // Reading the temperatures of a GPU tensor would cost a device sync per call.
    if (input.is_cpu()) {
      for (int64_t r = 0; r < temperature.size(0); ++r)
        TORCH_CHECK(temp[r] > 0.f && std::isfinite(temp[r]), op, ": temperature[", r,
                    "] must be finite and > 0, got ", temp[r]);
    }
  }
  if (input.numel() == 0) return std::nullopt;

  SoftmaxArgs args{};
  args.out = out.data_ptr();
  args.out_stride = out.stride(0);
  args.input = input.data_ptr();
  args.in_stride = input.stride(0);
  args.temperature = temp;
  args.rows = input.size(0);
  args.cols = input.size(1);
  args.log = log;
  return args;
}

std::optional<TopkSoftmaxArgs> prepare_topk_softmax(at::Tensor& topk_weights, at::Tensor& topk_ids,
                                                    const at::Tensor& gating_output,
                                                    bool renormalize) {
  FORGE_CHECK_DIM("topk_softmax", gating_output, 2);
  FORGE_CHECK_DIM("topk_softmax", topk_weights, 2);
  FORGE_CHECK_DIM("topk_softmax", topk_ids, 2);
  FORGE_CHECK_SAME_DEVICE("topk_softmax", topk_weights, gating_output);
  FORGE_CHECK_SAME_DEVICE("topk_softmax", topk_ids, gating_output);
  FORGE_CHECK_FLOATING("topk_softmax", gating_output);
  FORGE_CHECK_DTYPE("topk_softmax", topk_weights, at::kFloat);
  FORGE_CHECK_DTYPE("topk_softmax", topk_ids, at::kInt);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("topk_softmax", gating_output);
  FORGE_CHECK_CONTIGUOUS("topk_softmax", topk_weights);
  FORGE_CHECK_CONTIGUOUS("topk_softmax", topk_ids);
  const int64_t rows = gating_output.size(0), experts = gating_output.size(1);
  const int64_t k = topk_weights.size(1);
  FORGE_CHECK_SIZE("topk_softmax", topk_weights, 0, rows);
  TORCH_CHECK(topk_ids.sizes() == topk_weights.sizes(),
              "topk_softmax: topk_ids must have the "
              "shape of topk_weights ",
              shape_string(topk_weights), ", got ", shape_string(topk_ids));
  TORCH_CHECK(k >= 1 && k <= experts, "topk_softmax: k (topk_weights.size(1)) must be in [1, ",
              experts, "] (the number of experts), got ", k);
  TORCH_CHECK(experts <= INT32_MAX, "topk_softmax: too many experts: ", experts);
  if (rows == 0) return std::nullopt;

  TopkSoftmaxArgs args{};
  args.topk_weights = topk_weights.data_ptr<float>();
  args.topk_ids = topk_ids.data_ptr<int32_t>();
  args.gating = gating_output.data_ptr();
  args.gating_stride = gating_output.stride(0);
  args.rows = rows;
  args.experts = static_cast<int>(experts);
  args.k = static_cast<int>(k);
  args.renormalize = renormalize;
  return args;
}

}  // namespace forge
