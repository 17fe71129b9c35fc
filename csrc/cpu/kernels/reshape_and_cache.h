// Scatter new K/V rows into the paged cache, torch-free.
//
// Token i goes to slot slot_mapping[i] = block * block_size + offset; a negative slot is
// padding and is skipped. Rows are copied bit for bit (cache dtype == input dtype), so
// the kernel only needs the element size.
#pragma once

#include "cpu/kernels/args.h"

#include <cstdint>
#include <cstring>

namespace forge::cpu::FORGE_ISA {

inline void reshape_and_cache_kernel(const ReshapeAndCacheArgs& a) {
  const int64_t es = a.element_size;
  const size_t row_bytes = static_cast<size_t>(a.head_size) * es;
  auto* kc = static_cast<char*>(a.key_cache);
  auto* vc = static_cast<char*>(a.value_cache);
  const auto* k = static_cast<const char*>(a.key);
  const auto* v = static_cast<const char*>(a.value);

#pragma omp parallel for schedule(static) if (a.num_tokens * row_bytes > (1 << 16))
  for (int64_t i = 0; i < a.num_tokens; ++i) {
    const int64_t slot = a.slot_mapping[i];
    if (slot < 0) continue;
    const int64_t block = slot / a.block_size;
    const int64_t offset = slot % a.block_size;
    for (int h = 0; h < a.num_kv_heads; ++h) {
      std::memcpy(kc + (block * a.kc_stride_block + h * a.kc_stride_head +
                        offset * a.kc_stride_slot) * es,
                  k + (i * a.k_stride_token + h * a.k_stride_head) * es, row_bytes);
      std::memcpy(vc + (block * a.vc_stride_block + h * a.vc_stride_head +
                        offset * a.vc_stride_slot) * es,
                  v + (i * a.v_stride_token + h * a.v_stride_head) * es, row_bytes);
    }
  }
}

}  // namespace forge::cpu::FORGE_ISA
