// RMS normalisation over the last dimension, torch-free. One row per loop iteration,
// rows spread over threads; fp32 accumulation, one rounding on store.
//   rms_norm:            out = x / sqrt(mean(x^2) + eps) * w
//   fused_add_rms_norm:  r = x + r (stored back, rounded); x = rms_norm(r) (the sum is
//                        normalised before rounding, as vLLM's reference does)
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

// Sum of squares of a row of fp32 sums or of T inputs, 16 lanes at a time.
template <typename T>
inline float sum_squares(const T* x, int64_t n) {
  vfloat acc[4] = {};  // independent chains, as the FMA latency would otherwise bind
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes)
    for (int u = 0; u < 4; ++u) {
      const vfloat v = load16(x + i + u * kLanes);
      acc[u] += v * v;
    }
  for (; i + kLanes <= n; i += kLanes) {
    const vfloat v = load16(x + i);
    acc[0] += v * v;
  }
  float tail = 0.f;
  for (; i < n; ++i) tail += to_float(x[i]) * to_float(x[i]);
  return reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail;
}

// out = x * inv * w (w optional), rounding once.
template <typename T, typename X>
inline void scale_row(const X* x, int64_t n, float inv, const T* w, T* out) {
  int64_t i = 0;
  if (w != nullptr) {
    for (; i + kLanes <= n; i += kLanes) store16(out + i, load16(x + i) * inv * load16(w + i));
    for (; i < n; ++i) out[i] = from_float<T>(to_float(x[i]) * inv * to_float(w[i]));
  } else {
    for (; i + kLanes <= n; i += kLanes) store16(out + i, load16(x + i) * inv);
    for (; i < n; ++i) out[i] = from_float<T>(to_float(x[i]) * inv);
  }
}

inline float inv_rms(float sum_sq, int64_t n, float eps) {
  return 1.f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
}

}  // namespace detail

// Rows are independent: two passes over each row (the row stays in L1 between them).
template <typename T>
void rms_norm_kernel(const RmsNormArgs& a) {
  const T* w = static_cast<const T*>(a.weight);
#pragma omp parallel for schedule(static) if (a.rows * a.hidden > 32768)
  for (int64_t r = 0; r < a.rows; ++r) {
    const T* x = static_cast<const T*>(a.input) + a.in_rows.offset(r);
    const float inv = detail::inv_rms(detail::sum_squares(x, a.hidden), a.hidden, a.epsilon);
    detail::scale_row(x, a.hidden, inv, w, static_cast<T*>(a.out) + a.out_rows.offset(r));
  }
}

// residual <- x + residual (rounded); x <- rms_norm of the unrounded fp32 sum. Pass 1
// reads x and residual once, writes the residual and keeps the fp32 sums (in a per-thread
// row, or, for fp32, in the residual itself); pass 2 reads only the sums (in cache) and
// the weight and writes x. Re-reading both inputs in pass 2 was measured 1.3-2x slower
// on wide rows.
template <typename T>
void fused_add_rms_norm_kernel(const RmsNormArgs& a) {
  const T* w = static_cast<const T*>(a.weight);
  const int64_t n = a.hidden;
  constexpr bool kSumsInResidual = std::is_same_v<T, float>;
#pragma omp parallel if (a.rows * a.hidden > 32768)
  {
    std::unique_ptr<float[]> scratch(kSumsInResidual ? nullptr : new float[n]);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < a.rows; ++r) {
      T* x = static_cast<T*>(a.input) + a.in_rows.offset(r);
      T* res = static_cast<T*>(a.residual) + a.res_rows.offset(r);
      float* sums = kSumsInResidual ? reinterpret_cast<float*>(res) : scratch.get();
      // Four independent sums: one chain of FMAs would wait on its own latency.
      vfloat acc[4] = {};
      int64_t i = 0;
      for (; i + 4 * kLanes <= n; i += 4 * kLanes)
        for (int u = 0; u < 4; ++u) {
          const vfloat v = load16(x + i + u * kLanes) + load16(res + i + u * kLanes);
          store16(res + i + u * kLanes, v);
          if constexpr (!kSumsInResidual) store16(sums + i + u * kLanes, v);
          acc[u] += v * v;
        }
      for (; i + kLanes <= n; i += kLanes) {
        const vfloat v = load16(x + i) + load16(res + i);
        store16(res + i, v);
        if constexpr (!kSumsInResidual) store16(sums + i, v);
        acc[0] += v * v;
      }
      float tail = 0.f;
      for (; i < n; ++i) {
        const float v = to_float(x[i]) + to_float(res[i]);
        res[i] = from_float<T>(v);
        sums[i] = v;
        tail += v * v;
      }
      const float inv =
          detail::inv_rms(reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail, n, a.epsilon);
      detail::scale_row(sums, n, inv, w, x);
    }
  }
}

}  // namespace forge::cpu::FORGE_ISA
