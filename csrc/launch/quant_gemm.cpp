// quant_gemm's checks and arguments, for every device. The weight is in the tiled form
// of python/vllm_forge/quant/format.py; a weight in any other layout (the row form, a
// GGUF block array, GPTQ's packed int32) is refused by its dtype or shape here.
#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <algorithm>
#include <limits>

#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {

constexpr int64_t kQuantTileN = 16;  // output features per tile

int64_t quant_tiled_columns(int64_t k, int64_t bits) { return (k + 31) / 32 * 32 * 16 * bits / 8; }

std::optional<QuantGemmArgs> prepare_quant_gemm(at::Tensor& out, const at::Tensor& x,
                                                const at::Tensor& qweight, const at::Tensor& scales,
                                                const std::optional<at::Tensor>& mins_opt,
                                                const std::optional<at::Tensor>& bias_opt,
                                                int64_t bits, int64_t group_size, bool quantize_x) {
  constexpr const char* op = "quant_gemm";
  TORCH_CHECK(bits == 4 || bits == 8, op, ": bits must be 4 or 8, got ", bits);
  TORCH_CHECK(group_size == 16 || group_size == 32 || group_size == 64 || group_size == 128 ||
                  group_size == 256,
              op, ": group_size must be 16, 32, 64, 128 or 256, got ", group_size);
  FORGE_CHECK_DIM(op, x, 2);
  FORGE_CHECK_FLOATING(op, x);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, x);
  FORGE_CHECK_SAME_DEVICE(op, out, x);
  FORGE_CHECK_SAME_DEVICE(op, qweight, x);
  FORGE_CHECK_SAME_DEVICE(op, scales, x);
  const int64_t m = x.size(0), k = x.size(1);

  FORGE_CHECK_DIM(op, out, 2);
  FORGE_CHECK_SAME_DTYPE(op, out, x);
  const int64_t n = out.size(1);  // the tiled form pads N to whole tiles: N is the output's
  TORCH_CHECK(out.size(0) == m, op, ": out must have shape [", m, ", N] (x.size(0), N), got ",
              shape_string(out));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, out);

  FORGE_CHECK_DIM(op, qweight, 2);
  if (bits == 8) {
    TORCH_CHECK(qweight.scalar_type() == at::kChar, op,
                ": qweight must have dtype int8 for bits=8 (one code per weight), got ",
                qweight.scalar_type());
  } else {
    TORCH_CHECK(qweight.scalar_type() == at::kByte, op,
                ": qweight must have dtype uint8 for bits=4 (two codes per byte), got ",
                qweight.scalar_type());
  }
  const int64_t tiles = (n + kQuantTileN - 1) / kQuantTileN;
  const int64_t cols = quant_tiled_columns(k, bits);
  TORCH_CHECK(qweight.size(0) == tiles && qweight.size(1) == cols, op,
              ": qweight must have shape [", tiles, ", ", cols, "] (tiles of 16 of N=", n,
              " (out.size(1)), bytes per tile for K=", k, " (x.size(1)) and bits=", bits, "), got ",
              shape_string(qweight));
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, qweight);

  const int64_t groups = (k + group_size - 1) / group_size;
  FORGE_CHECK_DIM(op, scales, 3);
  TORCH_CHECK(scales.scalar_type() == at::kFloat || scales.scalar_type() == at::kHalf, op,
              ": scales must have dtype float32 or float16, got ", scales.scalar_type());
  TORCH_CHECK(scales.size(0) == tiles && scales.size(1) == groups && scales.size(2) == kQuantTileN,
              op, ": scales must have shape [", tiles, ", ", groups, ", ", kQuantTileN,
              "] (tiles, ceil(K / group_size) for K=", k, ", group_size=", group_size,
              ", 16), got ", shape_string(scales));
  FORGE_CHECK_CONTIGUOUS(op, scales);
  if (mins_opt.has_value()) {
    const at::Tensor& mins = *mins_opt;
    FORGE_CHECK_SAME_DEVICE(op, mins, x);
    FORGE_CHECK_SAME_DTYPE(op, mins, scales);
    TORCH_CHECK(mins.sizes() == scales.sizes() && mins.strides() == scales.strides(), op,
                ": mins must have the shape and strides of scales ", shape_string(scales), " ",
                scales.strides(), ", got ", shape_string(mins), " ", mins.strides());
  }
  if (bias_opt.has_value()) {
    const at::Tensor& bias = *bias_opt;
    FORGE_CHECK_SAME_DEVICE(op, bias, x);
    FORGE_CHECK_SAME_DTYPE(op, bias, x);
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == n, op, ": bias must have shape [", n,
                "] (N = out.size(1)), got ", shape_string(bias));
    FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, bias);
  }
  // TooHard: strided views; refused only when both are views of one storage.
  const auto overlap = at::get_overlap_status(out, x);
  TORCH_CHECK(out.numel() == 0 || overlap == at::MemOverlapStatus::No ||
                  (overlap == at::MemOverlapStatus::TooHard && !out.is_alias_of(x)),
              op, ": out must not share memory with x");
  if (m == 0 || n == 0) return std::nullopt;

  QuantGemmArgs args{};
  args.out = out.data_ptr();
  args.out_stride_row = out.stride(0);
  args.x = x.data_ptr();
  args.x_stride_row = x.stride(0);
  args.qweight = static_cast<const uint8_t*>(qweight.data_ptr());
  args.q_stride_tile = qweight.stride(0);
  args.scales = scales.data_ptr();
  args.mins = mins_opt.has_value() ? mins_opt->data_ptr() : nullptr;
  args.scales_fp16 = scales.scalar_type() == at::kHalf;
  args.bias = bias_opt.has_value() ? bias_opt->data_ptr() : nullptr;
  args.m = m;
  args.n = n;
  args.k = k;
  args.bits = static_cast<int>(bits);
  args.group_size = static_cast<int>(group_size);
  args.quantize_x = quantize_x;
  return args;
}

at::Tensor quantize_x_int8(const at::Tensor& x, int64_t group_size) {
  const int64_t block = std::min<int64_t>(group_size, 32), m = x.size(0), k = x.size(1);
  const int64_t kp = (k + block - 1) / block * block;
  const at::Tensor xf =
      at::constant_pad_nd(x.to(at::kFloat), {0, kp - k}).view({m, kp / block, block});
  const at::Tensor amax = xf.abs().amax(-1, /*keepdim=*/true);
  const at::Tensor finite = at::isfinite(amax);
  // A true division (the CPU kernel's 127 / max): Scalar / Tensor is reciprocal * 127.
  const at::Tensor id = at::where(finite & (amax > 0), at::full_like(amax, 127.0) / amax, 0.0);
  const at::Tensor d = at::where(finite, amax / 127.0, std::numeric_limits<float>::quiet_NaN());
  return (at::round(xf * id) * d).view({m, kp}).narrow(1, 0, k);
}

}  // namespace forge
