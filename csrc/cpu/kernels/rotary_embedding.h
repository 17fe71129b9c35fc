// Rotary position embedding, in place on query and key, torch-free.
//
// cos_sin_cache row p holds rot_dim/2 cosines then rot_dim/2 sines for position p. Only
// the first rot_dim entries of each head are rotated (partial rotary); the rest are left.
//   neox style:  pairs (i, i + rot_dim/2)     gpt-j style: pairs (2i, 2i + 1)
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin        (fp32 math, one rounding)
#pragma once

#include <cstdint>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

template <typename T>
inline void rotate_head(T* x, const float* cos, const float* sin, int half, bool neox) {
  if (neox) {
    // The halves are contiguous: 16-lane vectors (the generic loop below vectorises the
    // bf16 rounding poorly).
    int i = 0;
    for (; i + kLanes <= half; i += kLanes) {
      const vfloat c = load16(cos + i), s = load16(sin + i);
      const vfloat x1 = load16(x + i), x2 = load16(x + i + half);
      store16(x + i, x1 * c - x2 * s);
      store16(x + i + half, x2 * c + x1 * s);
    }
    for (; i < half; ++i) {
      const float x1 = to_float(x[i]), x2 = to_float(x[i + half]);
      x[i] = from_float<T>(x1 * cos[i] - x2 * sin[i]);
      x[i + half] = from_float<T>(x2 * cos[i] + x1 * sin[i]);
    }
  } else {
#pragma omp simd
    for (int i = 0; i < half; ++i) {
      const float x1 = to_float(x[2 * i]), x2 = to_float(x[2 * i + 1]);
      x[2 * i] = from_float<T>(x1 * cos[i] - x2 * sin[i]);
      x[2 * i + 1] = from_float<T>(x2 * cos[i] + x1 * sin[i]);
    }
  }
}

}  // namespace detail

template <typename T>
void rotary_embedding_kernel(const RotaryArgs& a) {
  const int half = a.rot_dim / 2;
#pragma omp parallel for schedule(static) if (a.num_tokens * a.num_heads > 256)
  for (int64_t t = 0; t < a.num_tokens; ++t) {
    // Cosines and sines converted once per token, shared by every head.
    float cos[512], sin[512];  // rot_dim <= 1024: prepare_rotary_embedding checks it
    const T* row = static_cast<const T*>(a.cos_sin_cache) + a.positions[t] * a.cache_stride;
    for (int i = 0; i < half; ++i) {
      cos[i] = to_float(row[i]);
      sin[i] = to_float(row[half + i]);
    }
    T* q = static_cast<T*>(a.query) + t * a.q_stride_token;
    for (int h = 0; h < a.num_heads; ++h)
      detail::rotate_head(q + h * a.q_stride_head, cos, sin, half, a.is_neox);
    if (a.key != nullptr) {
      T* k = static_cast<T*>(a.key) + t * a.k_stride_token;
      for (int h = 0; h < a.num_kv_heads; ++h)
        detail::rotate_head(k + h * a.k_stride_head, cos, sin, half, a.is_neox);
    }
  }
}

}  // namespace forge::cpu::FORGE_ISA
