// rotary_embedding: one block per token; threads walk (head, pair) of query then key.
// Positions were range-checked on the host where that is free (CPU); here an
// out-of-range position leaves the token untouched rather than reading past the cache.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kThreads = 128;

template <typename T>
__device__ __forceinline__ void rotate(T* x, int64_t stride_head, int heads, const T* cos,
                                       const T* sin, int half, bool is_neox) {
  for (int i = threadIdx.x; i < heads * half; i += blockDim.x) {
    const int h = i / half, p = i % half;
    T* head = x + h * stride_head;
    const int i1 = is_neox ? p : 2 * p;
    const int i2 = is_neox ? p + half : 2 * p + 1;
    const float c = to_float(cos[p]), s = to_float(sin[p]);
    const float x1 = to_float(head[i1]), x2 = to_float(head[i2]);
    head[i1] = from_float<T>(x1 * c - x2 * s);
    head[i2] = from_float<T>(x2 * c + x1 * s);
  }
}

template <typename T>
__global__ void rotary_embedding_kernel(RotaryArgs a, int64_t max_position) {
  const int64_t token = blockIdx.x;
  const int64_t pos = a.positions[token];
  if (pos < 0 || pos >= max_position) return;
  const int half = a.rot_dim / 2;
  const T* cos = static_cast<const T*>(a.cos_sin_cache) + pos * a.cache_stride;
  const T* sin = cos + half;
  rotate(static_cast<T*>(a.query) + token * a.q_stride_token, a.q_stride_head, a.num_heads, cos,
         sin, half, a.is_neox);
  if (a.key != nullptr) {
    rotate(static_cast<T*>(a.key) + token * a.k_stride_token, a.k_stride_head, a.num_kv_heads, cos,
           sin, half, a.is_neox);
  }
}

}  // namespace

cudaError_t rotary_embedding(DType dtype, const RotaryArgs& args, int64_t max_position,
                             cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    rotary_embedding_kernel<T>
        <<<static_cast<unsigned>(args.num_tokens), kThreads, 0, stream>>>(args, max_position);
    return cudaGetLastError();
  });
}

}  // namespace forge::cuda
