// CPU launcher for quant_gemm (checks: launch/quant_gemm.cpp, kernels:
// cpu/kernels/quant_gemm.h). Two paths for x as given, chosen by quant_gemm_panel_rows()
// (quantize_x always takes the fused kernel):
// - few rows of x (decode, small batches): the fused kernel, which reads each weight byte
//   once and dequantises it in registers: bound by the bytes of the weight;
// - many rows (prefill): W is dequantised panel by panel into x's dtype (a few MB, kept in
//   cache) and each panel multiplied by torch's GEMM (oneDNN; AVX512-BF16 for bf16), which
//   is compute-bound at that size and faster than our register-tiled FMA kernel. For bf16
//   x this rounds W to bf16, as vLLM's own unquantised bf16 model stores it.
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

// Rows of W per dequantised panel for an [m, k] x, or 0 for the fused kernel. A GEMM
// library call on a dequantised panel is better blocked than our micro-kernel and wins
// once m is large enough to pay for writing and re-reading the panel.
int64_t quant_gemm_panel_rows(int64_t m, int64_t n, int64_t k, int64_t element_size) {
  // Measured (int4 group 32, bf16 x, 2 cores; 16384 x 2048 / 2048 x 8192 / 3072 x 2048),
  // GOPS fused vs panels: m = 64 322 / 305 / 305 vs 277 / 188 / -, m = 128 325 / 303 / 289
  // vs 336 / 280 / -, m = 256 326 / 287 / 262 vs 363 / 336 / -: even at 128.
  constexpr int64_t kFusedMaxRows = 128;
  constexpr int64_t kPanelBytes = int64_t{4} << 20;
  if (m <= kFusedMaxRows) return 0;
  const int64_t rows =
      kPanelBytes / std::max<int64_t>(1, k * element_size) / 16 * 16;  // whole tiles
  return std::min((n + 15) / 16 * 16, std::max<int64_t>(16, rows));
}

void quant_gemm_cpu(at::Tensor& out, const at::Tensor& x, const at::Tensor& qweight,
                    const at::Tensor& scales, const std::optional<at::Tensor>& mins,
                    const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                    bool quantize_x) {
  FORGE_CHECK_CPU("quant_gemm", x);
  const std::optional<QuantGemmArgs> args =
      prepare_quant_gemm(out, x, qweight, scales, mins, bias, bits, group_size, quantize_x);
  if (!args) return;
  static CallCounter counter("quant_gemm");
  counter.add();
  // int8 x: the fused kernel at every size (its int8 dot products are the point; panels
  // would multiply in x's dtype).
  const int64_t panel_rows =
      quantize_x ? 0 : quant_gemm_panel_rows(args->m, args->n, args->k, x.element_size());
  if (panel_rows == 0 || args->k == 0) {
    FORGE_DISPATCH_FLOAT_TYPES("quant_gemm", x.scalar_type(), scalar_t,
                               [&] { cpu::kernels().of<scalar_t>().quant_gemm(*args); });
    return;
  }
  // W^T panels [k, panel_rows]: the tiled form dequantises to whole 16-feature vectors
  // per k, and oneDNN takes either orientation.
  at::Tensor panel = at::empty({args->k, panel_rows}, x.options());
  for (int64_t n0 = 0; n0 < args->n; n0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, args->n - n0);
    const QuantDequantArgs d{&*args, panel.data_ptr(), panel_rows, n0, n0 + rows};
    FORGE_DISPATCH_FLOAT_TYPES("quant_gemm", x.scalar_type(), scalar_t,
                               [&] { cpu::kernels().of<scalar_t>().quant_dequantize(d); });
    at::Tensor out_cols = out.narrow(1, n0, rows);
    const at::Tensor w_t = panel.narrow(1, 0, rows);
    if (bias.has_value()) {
      at::addmm_out(out_cols, bias->narrow(0, n0, rows), x, w_t);
    } else {
      at::mm_out(out_cols, x, w_t);
    }
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) { m.impl("quant_gemm", &quant_gemm_cpu); }

}  // namespace forge
