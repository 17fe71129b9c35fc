// Device helpers shared by the CUDA kernels: element conversions, 16-byte packs,
// warp and block reductions. Torch-free.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace forge::cuda {

constexpr int kWarp = 32;

// Explicit conversions: torch's build flags forbid the implicit half/bf16 ones.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// 16 bytes of T: the unit of a vectorised global access.
template <typename T>
struct Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  Pack<T> pack;
  *reinterpret_cast<uint4*>(pack.v) = *reinterpret_cast<const uint4*>(p);
  return pack;
}

template <typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& pack) {
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(pack.v);
}

// True when every row start (base + r * stride) and `width` keep 16-byte alignment.
template <typename T>
inline bool packable(const void* base, int64_t stride, int64_t width) {
  constexpr int64_t n = 16 / sizeof(T);
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && stride % n == 0 && width % n == 0;
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Block-wide reductions for blockDim.x a multiple of 32 (at most 1024). `scratch` holds
// 32 floats of shared memory; every thread gets the result.
__device__ __forceinline__ float block_sum(float x, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  x = warp_sum(x);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < blockDim.x / kWarp ? scratch[lane] : 0.f;
  return warp_sum(x);
}

__device__ __forceinline__ float block_max(float x, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < blockDim.x / kWarp ? scratch[lane] : -INFINITY;
  return warp_max(x);
}

}  // namespace forge::cuda

// Turn a runtime DType into the CUDA element type T inside a host launch function.
#define FORGE_CUDA_DISPATCH(dtype, T, ...) \
  [&]() -> cudaError_t {                   \
    switch (dtype) {                       \
      case ::forge::DType::kFloat32: {     \
        using T = float;                   \
        return __VA_ARGS__();              \
      }                                    \
      case ::forge::DType::kBFloat16: {    \
        using T = __nv_bfloat16;           \
        return __VA_ARGS__();              \
      }                                    \
      case ::forge::DType::kFloat16: {     \
        using T = __half;                  \
        return __VA_ARGS__();              \
      }                                    \
    }                                      \
    return cudaErrorInvalidValue;          \
  }()
