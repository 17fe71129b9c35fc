// Portable 16-lane float vectors (GCC/Clang vector extensions): one zmm register under
// AVX-512, two ymm under AVX2, four xmm on baseline x86-64 -- the same source compiled
// per ISA by kernel_table.cpp. Loads convert bf16/fp16 to fp32 in registers.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/float_types.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef FORGE_ISA
#error "kernel headers are compiled per ISA: include them from kernel_table.cpp only"
#endif

namespace forge::cpu::FORGE_ISA {

constexpr int kLanes = 16;
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
typedef uint16_t vu16 __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t vu32 __attribute__((vector_size(kLanes * sizeof(uint32_t))));
typedef _Float16 vhalf __attribute__((vector_size(kLanes * sizeof(_Float16))));

inline vfloat load16(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline vfloat load16(const bf16* p) {
#if defined(__AVX512F__)
  // One zero-extending load and a shift (GCC splits the generic form into ymm halves).
  // The maskz forms with an all-ones mask are the same instructions; the plain ones trip
  // GCC 12's -Wmaybe-uninitialized on their "undefined" pass-through (GCC bug 105593).
  const __m512i z =
      _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  vu32 w;
  std::memcpy(&w, &z, sizeof w);
  w <<= 16;
  vfloat v;
  std::memcpy(&v, &w, sizeof v);
  return v;
#else
  vu16 h;
  std::memcpy(&h, p, sizeof h);
  const vu32 w = __builtin_convertvector(h, vu32) << 16;
  vfloat v;
  std::memcpy(&v, &w, sizeof v);
  return v;
#endif
}

inline vfloat load16(const fp16* p) {
#if defined(__AVX512F__)
  // vcvtph2ps (GCC lowers the generic conversion to 16 scalar conversions without
  // AVX512-FP16).
  const __m512 f =
      _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  vfloat v;
  std::memcpy(&v, &f, sizeof v);
  return v;
#elif defined(__F16C__)
  const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  vfloat v;
  std::memcpy(&v, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char*>(&v) + sizeof lo, &hi, sizeof hi);
  return v;
#else
  vhalf h;
  std::memcpy(&h, p, sizeof h);
  return __builtin_convertvector(h, vfloat);
#endif
}

inline void store16(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }

// Round to nearest even, NaN kept quiet: the same rule as from_float<bf16>. With
// AVX512-BF16 one instruction does it (it also flushes denormal inputs, below 1e-38, to 0).
inline void store16(bf16* p, vfloat v) {
#if defined(__AVX512BF16__)
  __m512 x;
  std::memcpy(&x, &v, sizeof x);
  const __m256bh h = _mm512_cvtneps_pbh(x);
  std::memcpy(p, &h, sizeof h);
#else
  vu32 u;
  std::memcpy(&u, &v, sizeof u);
  const vu32 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vu32 quiet_nan = (u >> 16) | 0x40u;
  const vu32 bits = ((u & 0x7fffffffu) > 0x7f800000u) ? quiet_nan : rounded;
#if defined(__AVX512F__)
  __m512i b;
  std::memcpy(&b, &bits, sizeof b);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_maskz_cvtepi32_epi16(0xFFFF, b));  // one vpmovdw
#else
  const vu16 h = __builtin_convertvector(bits, vu16);
  std::memcpy(p, &h, sizeof h);
#endif
#endif
}

inline void store16(fp16* p, vfloat v) {
  const vhalf h = __builtin_convertvector(v, vhalf);
  std::memcpy(p, &h, sizeof h);
}

inline float reduce_add(vfloat v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

}  // namespace forge::cpu::FORGE_ISA
