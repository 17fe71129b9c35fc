// reshape_and_cache: one block per token; threads copy its [num_kv_heads, head_size]
// rows of key and value into the cache slot, through the cache's four strides.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

template <typename T>
__global__ void reshape_and_cache_kernel(ReshapeAndCacheArgs a, int64_t num_slots) {
  const int64_t token = blockIdx.x;
  const int64_t slot = a.slot_mapping[token];
  // < 0 is padding; >= num_slots was refused on the host where that is free (CPU) and
  // is never written here.
  if (slot < 0 || slot >= num_slots) return;
  const int64_t block = slot / a.block_size, offset = slot % a.block_size;
  const T* key = static_cast<const T*>(a.key) + token * a.k_stride_token;
  const T* value = static_cast<const T*>(a.value) + token * a.v_stride_token;
  T* kc = static_cast<T*>(a.key_cache) + block * a.kc_stride_block + offset * a.kc_stride_slot;
  T* vc = static_cast<T*>(a.value_cache) + block * a.vc_stride_block + offset * a.vc_stride_slot;
  const int n = a.num_kv_heads * a.head_size;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int h = i / a.head_size, d = i % a.head_size;
    kc[h * a.kc_stride_head + d * a.kc_stride_dim] = key[h * a.k_stride_head + d];
    vc[h * a.vc_stride_head + d * a.vc_stride_dim] = value[h * a.v_stride_head + d];
  }
}

}  // namespace

cudaError_t reshape_and_cache(DType dtype, const ReshapeAndCacheArgs& args, int64_t num_slots,
                              cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    reshape_and_cache_kernel<T>
        <<<static_cast<unsigned>(args.num_tokens), 256, 0, stream>>>(args, num_slots);
    return cudaGetLastError();
  });
}

}  // namespace forge::cuda
