// Software prefetch of a run of cache lines (to L2), for kernels that read memory whose
// address the hardware prefetcher cannot guess (paged K/V blocks).
#pragma once

#include <cstdint>

#ifndef FORGE_ISA
#error "kernel headers are compiled per ISA: include them from kernel_table.cpp only"
#endif

namespace forge::cpu::FORGE_ISA {

// `lines` cache lines from `p`.
struct PrefetchSpan {
  const char* p = nullptr;
  int64_t lines = 0;

  inline void issue() const {
    for (int64_t l = 0; l < lines; ++l) __builtin_prefetch(p + l * 64, 0, 2);
  }
};

}  // namespace forge::cpu::FORGE_ISA
