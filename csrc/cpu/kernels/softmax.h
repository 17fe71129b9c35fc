// Row softmax family, torch-free; fp32 math, one rounding on store.
//   softmax:      out = softmax(x / t)         log_softmax: out = log_softmax(x / t)
//   (t: optional per-row temperature, > 0)
//   topk_softmax: p = softmax(gating); the k largest p per row (ties: lower index
//                 first), optionally renormalised to sum to 1. MoE routing.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/vec_math.h"

namespace forge::cpu::FORGE_ISA {

template <typename T>
void softmax_kernel(const SoftmaxArgs& a) {
#pragma omp parallel for schedule(static) if (a.rows * a.cols > 32768)
  for (int64_t r = 0; r < a.rows; ++r) {
    const T* x = static_cast<const T*>(a.input) + r * a.in_stride;
    T* out = static_cast<T*>(a.out) + r * a.out_stride;
    const float inv_t = a.temperature != nullptr ? 1.f / a.temperature[r] : 1.f;
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t i = 0; i < a.cols; ++i) mx = std::max(mx, to_float(x[i]) * inv_t);
    // The sum runs in double: a 150k-entry vocabulary row would otherwise lose about
    // 1e-4 of relative precision, visible in log_softmax.
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < a.cols; ++i) sum += exp_approx(to_float(x[i]) * inv_t - mx);
    if (a.log) {
      const float shift = mx + static_cast<float>(std::log(sum));
#pragma omp simd
      for (int64_t i = 0; i < a.cols; ++i) out[i] = from_float<T>(to_float(x[i]) * inv_t - shift);
    } else {
      const float inv_sum = static_cast<float>(1.0 / sum);
#pragma omp simd
      for (int64_t i = 0; i < a.cols; ++i)
        out[i] = from_float<T>(exp_approx(to_float(x[i]) * inv_t - mx) * inv_sum);
    }
  }
}

template <typename T>
void topk_softmax_kernel(const TopkSoftmaxArgs& a) {
#pragma omp parallel for schedule(static) if (a.rows * a.experts > 32768)
  for (int64_t r = 0; r < a.rows; ++r) {
    const T* g = static_cast<const T*>(a.gating) + r * a.gating_stride;
    float* w = a.topk_weights + r * a.k;
    int32_t* ids = a.topk_ids + r * a.k;
    float mx = -std::numeric_limits<float>::infinity();
    for (int e = 0; e < a.experts; ++e) mx = std::max(mx, to_float(g[e]));
    float sum = 0.f;
    for (int e = 0; e < a.experts; ++e) sum += exp_approx(to_float(g[e]) - mx);
    // Insertion into a sorted top-k list: k is small (routing picks 1-8 experts).
    int filled = 0;
    for (int e = 0; e < a.experts; ++e) {
      const float v = to_float(g[e]);
      if (filled == a.k && !(v > to_float(g[ids[a.k - 1]]))) continue;
      int pos = filled < a.k ? filled++ : a.k - 1;
      while (pos > 0 && v > to_float(g[ids[pos - 1]])) {
        ids[pos] = ids[pos - 1];
        --pos;
      }
      ids[pos] = e;
    }
    float picked = 0.f;
    for (int j = 0; j < a.k; ++j) {
      w[j] = exp_approx(to_float(g[ids[j]]) - mx) / sum;
      picked += w[j];
    }
    if (a.renormalize && picked > 0.f)
      for (int j = 0; j < a.k; ++j) w[j] /= picked;
  }
}

}  // namespace forge::cpu::FORGE_ISA
