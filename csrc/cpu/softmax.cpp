// CPU launchers for softmax, log_softmax and topk_softmax (kernels: cpu/kernels/softmax.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "ops.h"

namespace forge {
namespace {

void run_softmax(const char* op, CallCounter& counter, at::Tensor& out, const at::Tensor& input,
                 const std::optional<at::Tensor>& temperature_opt, bool log) {
  TORCH_CHECK(input.dim() == 2, op, ": input must be a 2-D tensor [rows, cols], got shape ",
              shape_string(input));
  FORGE_CHECK_CPU(op, input);
  FORGE_CHECK_CPU(op, out);
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
    FORGE_CHECK_CPU(op, temperature);
    FORGE_CHECK_DTYPE(op, temperature, at::kFloat);
    TORCH_CHECK(temperature.dim() == 1 && temperature.size(0) == input.size(0), op,
                ": temperature must have shape [", input.size(0), "] (one per row), got ",
                shape_string(temperature));
    FORGE_CHECK_CONTIGUOUS(op, temperature);
    temp = temperature.data_ptr<float>();
    for (int64_t r = 0; r < temperature.size(0); ++r)
      TORCH_CHECK(temp[r] > 0.f && std::isfinite(temp[r]), op, ": temperature[", r,
                  "] must be finite and > 0, got ", temp[r]);
  }
  if (input.numel() == 0) return;
  cpu::SoftmaxArgs args{};
  args.out = out.data_ptr();
  args.out_stride = out.stride(0);
  args.input = input.data_ptr();
  args.in_stride = input.stride(0);
  args.temperature = temp;
  args.rows = input.size(0);
  args.cols = input.size(1);
  args.log = log;
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES(op, input.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().softmax(args); });
}

}  // namespace

void softmax_cpu(at::Tensor& out, const at::Tensor& input, const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("softmax");
  run_softmax("softmax", counter, out, input, temperature, false);
}

void log_softmax_cpu(at::Tensor& out, const at::Tensor& input,
                     const std::optional<at::Tensor>& temperature) {
  static CallCounter counter("log_softmax");
  run_softmax("log_softmax", counter, out, input, temperature, true);
}

void topk_softmax_cpu(at::Tensor& topk_weights, at::Tensor& topk_ids, const at::Tensor& gating_output,
                      bool renormalize) {
  FORGE_CHECK_DIM("topk_softmax", gating_output, 2);
  FORGE_CHECK_DIM("topk_softmax", topk_weights, 2);
  FORGE_CHECK_DIM("topk_softmax", topk_ids, 2);
  FORGE_CHECK_CPU("topk_softmax", gating_output);
  FORGE_CHECK_CPU("topk_softmax", topk_weights);
  FORGE_CHECK_CPU("topk_softmax", topk_ids);
  FORGE_CHECK_FLOATING("topk_softmax", gating_output);
  FORGE_CHECK_DTYPE("topk_softmax", topk_weights, at::kFloat);
  FORGE_CHECK_DTYPE("topk_softmax", topk_ids, at::kInt);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("topk_softmax", gating_output);
  FORGE_CHECK_CONTIGUOUS("topk_softmax", topk_weights);
  FORGE_CHECK_CONTIGUOUS("topk_softmax", topk_ids);
  const int64_t rows = gating_output.size(0), experts = gating_output.size(1);
  const int64_t k = topk_weights.size(1);
  FORGE_CHECK_SIZE("topk_softmax", topk_weights, 0, rows);
  TORCH_CHECK(topk_ids.sizes() == topk_weights.sizes(), "topk_softmax: topk_ids must have the "
              "shape of topk_weights ", shape_string(topk_weights), ", got ", shape_string(topk_ids));
  TORCH_CHECK(k >= 1 && k <= experts, "topk_softmax: k (topk_weights.size(1)) must be in [1, ",
              experts, "] (the number of experts), got ", k);
  TORCH_CHECK(experts <= INT32_MAX, "topk_softmax: too many experts: ", experts);
  if (rows == 0) return;
  cpu::TopkSoftmaxArgs args{};
  args.topk_weights = topk_weights.data_ptr<float>();
  args.topk_ids = topk_ids.data_ptr<int32_t>();
  args.gating = gating_output.data_ptr();
  args.gating_stride = gating_output.stride(0);
  args.rows = rows;
  args.experts = static_cast<int>(experts);
  args.k = static_cast<int>(k);
  args.renormalize = renormalize;
  static CallCounter counter("topk_softmax");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("topk_softmax", gating_output.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().topk_softmax(args); });
}

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("softmax", &softmax_cpu);
  m.impl("log_softmax", &log_softmax_cpu);
  m.impl("topk_softmax", &topk_softmax_cpu);
}

}  // namespace forge
