// Portable 16-lane float vectors (GCC/Clang vector extensions): one zmm register under
// AVX-512, two ymm under AVX2, four xmm on baseline x86-64 -- the same source compiled
// per ISA by kernel_table.cpp. Loads convert bf16/fp16 to fp32 in registers.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/float_types.h"

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
  vu16 h;
  std::memcpy(&h, p, sizeof h);
  const vu32 w = __builtin_convertvector(h, vu32) << 16;
  vfloat v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}

inline vfloat load16(const fp16* p) {
  vhalf h;
  std::memcpy(&h, p, sizeof h);
  return __builtin_convertvector(h, vfloat);
}

inline void store16(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }

}  // namespace forge::cpu::FORGE_ISA
