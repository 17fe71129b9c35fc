// The reduction of the shared-memory collectives, torch-free: dst[i] = sum over k of
// srcs[k][i], added in the order k = 0, 1, ... in fp32 and rounded once, so every rank
// that runs it on the same inputs gets bitwise the same result.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {

template <typename T>
void sum_kernel(const SumArgs& a) {
  const T* const* srcs = reinterpret_cast<const T* const*>(a.srcs);
  T* dst = static_cast<T*>(a.dst);
  int64_t i = 0;
  for (; i + 16 <= a.n; i += 16) {
    vfloat acc = load16(srcs[0] + i);
    for (int k = 1; k < a.num_srcs; ++k) acc += load16(srcs[k] + i);
    store16(dst + i, acc);
  }
  for (; i < a.n; ++i) {
    float acc = to_float(srcs[0][i]);
    for (int k = 1; k < a.num_srcs; ++k) acc += to_float(srcs[k][i]);
    dst[i] = from_float<T>(acc);
  }
}

}  // namespace forge::cpu::FORGE_ISA
