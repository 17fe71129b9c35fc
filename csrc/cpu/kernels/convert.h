// bf16/fp16 <-> fp32 conversions for kernels. Like every kernel header, compiled once per
// instruction set (namespace forge::cpu::FORGE_ISA, see kernel_table.cpp), so that no
// function compiled for AVX-512 is ever shared with the portable build.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/float_types.h"

#ifndef FORGE_ISA
#error "kernel headers are compiled per ISA: include them from kernel_table.cpp only"
#endif

namespace forge::cpu::FORGE_ISA {

inline float to_float(float x) { return x; }

inline float to_float(bf16 x) {
  uint32_t u = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline float to_float(fp16 x) {
  _Float16 h;
  std::memcpy(&h, &x.bits, sizeof h);
  return static_cast<float>(h);
}

template <typename T>
inline T from_float(float x);

template <>
inline float from_float<float>(float x) {
  return x;
}

// Round to nearest even, as torch does; NaN stays a (quiet) NaN.
template <>
inline bf16 from_float<bf16>(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

template <>
inline fp16 from_float<fp16>(float x) {
  _Float16 h = static_cast<_Float16>(x);
  fp16 out;
  std::memcpy(&out.bits, &h, sizeof h);
  return out;
}

}  // namespace forge::cpu::FORGE_ISA
