// Where row r of a [..., cols] tensor starts, torch-free. The leading dimensions of the
// tensors kernels see (a contiguous [tokens, hidden], or a [tokens, heads, head_dim]
// slice of a packed qkv) collapse into at most two levels of evenly spaced rows.
#pragma once

#include <cstdint>

// Helpers that CUDA kernels call too.
#if defined(__CUDACC__)
#define FORGE_HOST_DEVICE __host__ __device__
#else
#define FORGE_HOST_DEVICE
#endif

namespace forge {

struct RowLayout {
  int64_t inner_count = 1;   // rows per outer step
  int64_t inner_stride = 0;  // elements between rows within an outer step
  int64_t outer_stride = 0;  // elements between outer steps

  FORGE_HOST_DEVICE int64_t offset(int64_t r) const {
    return (r / inner_count) * outer_stride + (r % inner_count) * inner_stride;
  }
};

}  // namespace forge
