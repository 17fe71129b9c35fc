// RMS normalisation over the last dimension, torch-free. One row per loop iteration,
// rows spread over threads; fp32 accumulation, one rounding on store.
//   rms_norm:            out = x / sqrt(mean(x^2) + eps) * w
//   fused_add_rms_norm:  r = x + r (stored back, rounded); x = rms_norm(r) (the sum is
//                        normalised before rounding, as vLLM's reference does)
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu/kernels/args.h"
#include "cpu/kernels/convert.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

template <typename T>
inline void normalize_row(const float* x, int64_t n, const T* w, float eps, T* out) {
  float sum_sq = 0.f;
#pragma omp simd reduction(+ : sum_sq)
  for (int64_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const float inv = 1.f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  if (w != nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = from_float<T>(x[i] * inv * to_float(w[i]));
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = from_float<T>(x[i] * inv);
  }
}

// Rows up to this size keep their fp32 copy on the stack.
constexpr int64_t kStackRow = 16384;

}  // namespace detail

template <typename T>
void rms_norm_kernel(const RmsNormArgs& a) {
  const T* w = static_cast<const T*>(a.weight);
#pragma omp parallel
  {
    float stack_buf[detail::kStackRow];
    float* buf = a.hidden <= detail::kStackRow ? stack_buf : new float[a.hidden];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < a.rows; ++r) {
      const T* x = static_cast<const T*>(a.input) + a.in_rows.offset(r);
#pragma omp simd
      for (int64_t i = 0; i < a.hidden; ++i) buf[i] = to_float(x[i]);
      detail::normalize_row(buf, a.hidden, w, a.epsilon, static_cast<T*>(a.out) + a.out_rows.offset(r));
    }
    if (buf != stack_buf) delete[] buf;
  }
}

template <typename T>
void fused_add_rms_norm_kernel(const RmsNormArgs& a) {
  const T* w = static_cast<const T*>(a.weight);
#pragma omp parallel
  {
    float stack_buf[detail::kStackRow];
    float* buf = a.hidden <= detail::kStackRow ? stack_buf : new float[a.hidden];
#pragma omp for schedule(static)
    for (int64_t r = 0; r < a.rows; ++r) {
      T* x = static_cast<T*>(a.input) + a.in_rows.offset(r);
      T* res = static_cast<T*>(a.residual) + a.res_rows.offset(r);
#pragma omp simd
      for (int64_t i = 0; i < a.hidden; ++i) {
        buf[i] = to_float(x[i]) + to_float(res[i]);
        res[i] = from_float<T>(buf[i]);
      }
      detail::normalize_row(buf, a.hidden, w, a.epsilon, x);
    }
    if (buf != stack_buf) delete[] buf;
  }
}

}  // namespace forge::cpu::FORGE_ISA
