// Gated activations, torch-free: out[r, i] = act(x[r, i]) * x[r, d + i] for i < d,
// where x has 2d columns. fp32 math, one rounding on store.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/vec_math.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

template <Activation ACT>
inline float activate(float x) {
  if constexpr (ACT == Activation::kSilu) {
    return x * sigmoid_approx(x);
  } else if constexpr (ACT == Activation::kGelu) {
    return 0.5f * x * (1.f + erf_approx(x * 0.70710678118654752f));
  } else {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.f + tanh_approx(inner));
  }
}

}  // namespace detail

template <typename T, Activation ACT>
void gated_activation_kernel(const GatedActivationArgs& a) {
  // Small inputs stay on one thread: waking the pool costs more than the work.
#pragma omp parallel for schedule(static) if (a.rows * a.d > 32768)
  for (int64_t r = 0; r < a.rows; ++r) {
    const T* gate = static_cast<const T*>(a.input) + a.in_rows.offset(r);
    const T* up = gate + a.d;
    T* out = static_cast<T*>(a.out) + a.out_rows.offset(r);
#pragma omp simd
    for (int64_t i = 0; i < a.d; ++i)
      out[i] = from_float<T>(detail::activate<ACT>(to_float(gate[i])) * to_float(up[i]));
  }
}

}  // namespace forge::cpu::FORGE_ISA
