// The reduction of the shared-memory collectives, torch-free: dst[i] = sum over k of
// srcs[k][i], added in the order k = 0, 1, ... in fp32 and rounded once, so every rank
// that runs it on the same inputs gets bitwise the same result.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {

// Four independent 16-lane vectors per iteration, and the sources prefetched a few KB
// ahead: the peers' slots were just written by other cores, so every line is a
// cross-core transfer, and keeping many in flight is what sets the speed.
template <typename T>
void sum_kernel(const SumArgs& a) {
  const T* const* srcs = reinterpret_cast<const T* const*>(a.srcs);
  T* dst = static_cast<T*>(a.dst);
  constexpr int kUnroll = 4;
  constexpr int64_t kAhead = 4096 / sizeof(T);  // elements
  int64_t i = 0;
  for (; i + kUnroll * kLanes <= a.n; i += kUnroll * kLanes) {
    if (i + kAhead < a.n)
      for (int k = 0; k < a.num_srcs; ++k)
        for (int u = 0; u < kUnroll * kLanes * static_cast<int>(sizeof(T)); u += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(srcs[k] + i + kAhead) + u, 0, 3);
    vfloat acc[kUnroll];
    for (int u = 0; u < kUnroll; ++u) acc[u] = load16(srcs[0] + i + u * kLanes);
    for (int k = 1; k < a.num_srcs; ++k)
      for (int u = 0; u < kUnroll; ++u) acc[u] += load16(srcs[k] + i + u * kLanes);
    for (int u = 0; u < kUnroll; ++u) store16(dst + i + u * kLanes, acc[u]);
  }
  for (; i + kLanes <= a.n; i += kLanes) {
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
