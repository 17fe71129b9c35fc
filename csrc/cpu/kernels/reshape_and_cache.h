// Scatter new K/V rows into the paged cache, torch-free.
//
// Token i goes to slot slot_mapping[i] = block * block_size + offset; a negative slot is
// padding and is skipped. Rows are copied bit for bit (cache dtype == input dtype), so
// the kernel only needs the element size. Cache strides are free: FORGE_ATTN stores
// keys transposed within a block (see paged_attention.h).
#pragma once

#include <cstdint>
#include <cstring>

#include "common/kernel_args.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

// Copy one head's row into the cache; contiguous destinations are a memcpy, strided ones
// (transposed key tiles) an element-wise scatter of `ES`-byte elements.
template <int ES>
inline void copy_row(char* dst, int64_t dst_stride, const char* src, int n) {
  if (dst_stride == 1) {
    std::memcpy(dst, src, static_cast<size_t>(n) * ES);
    return;
  }
  for (int d = 0; d < n; ++d) std::memcpy(dst + d * dst_stride * ES, src + d * ES, ES);
}

template <int ES>
void scatter(const ReshapeAndCacheArgs& a) {
  auto* kc = static_cast<char*>(a.key_cache);
  auto* vc = static_cast<char*>(a.value_cache);
  const auto* k = static_cast<const char*>(a.key);
  const auto* v = static_cast<const char*>(a.value);
#pragma omp parallel for schedule(static) if (a.num_tokens * a.num_kv_heads * a.head_size > \
                                                  (1 << 15))
  for (int64_t i = 0; i < a.num_tokens; ++i) {
    const int64_t slot = a.slot_mapping[i];
    if (slot < 0) continue;
    const int64_t block = slot / a.block_size;
    const int64_t offset = slot % a.block_size;
    for (int h = 0; h < a.num_kv_heads; ++h) {
      copy_row<ES>(
          kc + (block * a.kc_stride_block + h * a.kc_stride_head + offset * a.kc_stride_slot) * ES,
          a.kc_stride_dim, k + (i * a.k_stride_token + h * a.k_stride_head) * ES, a.head_size);
      copy_row<ES>(
          vc + (block * a.vc_stride_block + h * a.vc_stride_head + offset * a.vc_stride_slot) * ES,
          a.vc_stride_dim, v + (i * a.v_stride_token + h * a.v_stride_head) * ES, a.head_size);
    }
  }
}

}  // namespace detail

inline void reshape_and_cache_kernel(const ReshapeAndCacheArgs& a) {
  if (a.element_size == 2)
    detail::scatter<2>(a);
  else
    detail::scatter<4>(a);
}

}  // namespace forge::cpu::FORGE_ISA
