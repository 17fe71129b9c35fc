// Software prefetch of a run of cache lines (to L2), for kernels that read memory whose
// address the hardware prefetcher cannot guess (paged K/V blocks).
#pragma once

#include <algorithm>
#include <cstdint>

#ifndef FORGE_ISA
#error "kernel headers are compiled per ISA: include them from kernel_table.cpp only"
#endif

namespace forge::cpu::FORGE_ISA {

// `lines` cache lines from `p`.
struct PrefetchSpan {
  const char* p = nullptr;
  int64_t lines = 0;
};

// Part `part` of `parts` of the cache lines covering `bytes` from `base` (nothing for a
// null base).
inline PrefetchSpan part_of(const void* base, int64_t bytes, int part, int parts) {
  if (base == nullptr) return {};
  const int64_t lines = (bytes + 63) / 64;
  const int64_t begin = lines * part / parts;
  return {static_cast<const char*>(base) + begin * 64, lines * (part + 1) / parts - begin};
}

// Spreads a prefetch span over `iterations` loop iterations: lines [i k, (i + 1) k)
// at iteration i, so the requests flow with the work instead of in one burst.
struct SpreadPrefetch {
  const char* p;
  int64_t lines, per_iteration;
  SpreadPrefetch(const PrefetchSpan& s, int iterations)
      : p(s.p), lines(s.lines), per_iteration((s.lines + iterations - 1) / iterations) {}
  inline void at(int i) const {
    for (int64_t l = i * per_iteration; l < std::min(lines, (i + 1) * per_iteration); ++l)
      __builtin_prefetch(p + l * 64, 0, 2);  // to L2
  }
};

}  // namespace forge::cpu::FORGE_ISA
