// quant_gemm: out = x @ W^T (+ bias), W [N, K] dequantised from int4/int8 codes with a
// scale (and a min) per group of k (layout: python/vllm_forge/quant/format.py):
//
//   W[n, k] = s[n, k / g] * q[n, k] + m[n, k / g]     out[i, n] = sum_k x[i, k] W[n, k] + b[n]
//
// NOT YET RUN: written and compiled (make cuda-check) on a machine without a GPU; its first
// run on one is tests/kernels/test_quant_gemm.py (against the torch reference) and
// benchmarks/gpu/sanitize.py (memcheck, racecheck).
//
// Work split: a warp owns one output column n and ROWS consecutive rows of x. Its lanes
// stride over the 32-weight blocks of row n of W (lane l takes blocks l, l + 32, ...):
// per block one 16-byte load of int4 codes (two for int8), unpacked and dequantised into
// 32 fp32 registers exactly as the reference does (q * s, then + m, rounded each time),
// then multiplied into the ROWS accumulators with x read 16 bytes at a time. The lanes'
// partial sums meet in a warp shuffle. Each weight byte is read once per ROWS rows: the
// kernel is bound by the weight's bytes for decode and small batches; large batches
// re-read W (from L2) every ROWS rows and do fp32 FMAs, not tensor-core MMAs.
//
// A 32-weight block is two halves of 16 consecutive k (an int4 block's low and high
// nibbles); groups are at least 16 wide and aligned, so each half has one group.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kBlockK = 32;  // weights per block of codes
constexpr int kHalf = 16;
constexpr int kMaxRows = 8;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float group_value(const void* p, bool fp16, int64_t i) {
  return fp16 ? __half2float(static_cast<const __half*>(p)[i]) : static_cast<const float*>(p)[i];
}

__device__ __forceinline__ uint32_t byte_of(const uint4& v, int j) {
  const uint32_t word = j < 4 ? v.x : j < 8 ? v.y : j < 12 ? v.z : v.w;
  return (word >> (8 * (j % 4))) & 0xFFu;
}

// Codes of block b of a row (k = 32 b + j -> q[j]) as floats; 0 past k.
template <int BITS>
__device__ __forceinline__ void load_codes(const uint8_t* qrow, int64_t b, int64_t k, bool vec,
                                           float (&q)[kBlockK]) {
  const int64_t k0 = b * kBlockK;
  if constexpr (BITS == 4) {
    // A row has whole 16-byte blocks (codes past K are 0 by the format).
    const uint8_t* p = qrow + b * kHalf;
    uint4 raw;
    if (vec) {
      raw = *reinterpret_cast<const uint4*>(p);
    } else {
      uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
      for (int j = 0; j < kHalf; ++j) w[j / 4] |= static_cast<uint32_t>(p[j]) << (8 * (j % 4));
      raw = make_uint4(w[0], w[1], w[2], w[3]);
    }
#pragma unroll
    for (int j = 0; j < kHalf; ++j) {
      const uint32_t byte = byte_of(raw, j);
      q[j] = static_cast<float>(byte & 0xFu);
      q[kHalf + j] = static_cast<float>(byte >> 4);
    }
  } else {
    const int8_t* p = reinterpret_cast<const int8_t*>(qrow) + k0;
    if (vec && k0 + kBlockK <= k) {
      const uint4 lo = *reinterpret_cast<const uint4*>(p);
      const uint4 hi = *reinterpret_cast<const uint4*>(p + kHalf);
#pragma unroll
      for (int j = 0; j < kHalf; ++j) {
        q[j] = static_cast<float>(static_cast<int8_t>(byte_of(lo, j)));
        q[kHalf + j] = static_cast<float>(static_cast<int8_t>(byte_of(hi, j)));
      }
    } else {
#pragma unroll
      for (int j = 0; j < kBlockK; ++j) q[j] = k0 + j < k ? static_cast<float>(p[j]) : 0.f;
    }
  }
}

// sum_j x[k0 + j] w[j] over the block (x past k is not read).
template <typename T>
__device__ __forceinline__ float block_dot(const T* xrow, int64_t k0, int64_t k, bool vec,
                                           const float (&w)[kBlockK]) {
  float sum = 0.f;
  if (vec && k0 + kBlockK <= k) {
    constexpr int P = Pack<T>::kSize;
#pragma unroll
    for (int p = 0; p < kBlockK / P; ++p) {
      const Pack<T> xs = load_pack(xrow + k0 + p * P);
#pragma unroll
      for (int j = 0; j < P; ++j) sum += to_float(xs.v[j]) * w[p * P + j];
    }
  } else {
#pragma unroll
    for (int j = 0; j < kBlockK; ++j) {
      if (k0 + j < k) sum += to_float(xrow[k0 + j]) * w[j];
    }
  }
  return sum;
}

template <typename T, int BITS, int ROWS>
__global__ void __launch_bounds__(kWarpsPerBlock* kWarp)
    quant_gemm_kernel(QuantGemmArgs a, bool x_vec, bool q_vec) {
  const int lane = threadIdx.x % kWarp;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (n >= a.n) return;  // the whole warp: no shuffle waits for it
  const uint8_t* qrow = a.qweight + n * a.q_stride_row;
  const int64_t s_row = n * a.s_stride_row;
  const int64_t num_blocks = (a.k + kBlockK - 1) / kBlockK;
  const T* x = static_cast<const T*>(a.x);
  T* out = static_cast<T*>(a.out);
  const float bias = a.bias != nullptr ? to_float(static_cast<const T*>(a.bias)[n]) : 0.f;

  for (int64_t m0 = static_cast<int64_t>(blockIdx.y) * ROWS; m0 < a.m;
       m0 += static_cast<int64_t>(gridDim.y) * ROWS) {
    const int rows = a.m - m0 < ROWS ? static_cast<int>(a.m - m0) : ROWS;
    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = 0.f;

    for (int64_t b = lane; b < num_blocks; b += kWarp) {
      const int64_t k0 = b * kBlockK;
      float w[kBlockK];
      load_codes<BITS>(qrow, b, a.k, q_vec, w);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t kh = k0 + h * kHalf;
        float s = 0.f, mn = 0.f;
        if (kh < a.k) {  // a half wholly past K has no group (nor x) to read
          const int64_t g = s_row + kh / a.group_size;
          s = group_value(a.scales, a.scales_fp16, g);
          if (a.mins != nullptr) mn = group_value(a.mins, a.scales_fp16, g);
        }
#pragma unroll
        for (int j = 0; j < kHalf; ++j) {
          w[h * kHalf + j] = __fadd_rn(__fmul_rn(w[h * kHalf + j], s), mn);
        }
      }
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        if (r < rows) acc[r] += block_dot(x + (m0 + r) * a.x_stride_row, k0, a.k, x_vec, w);
      }
    }

#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float sum = warp_sum(acc[r]);  // every lane: the shuffle needs the whole warp
      if (lane == 0 && r < rows) out[(m0 + r) * a.out_stride_row + n] = from_float<T>(sum + bias);
    }
  }
}

template <typename T, int BITS, int ROWS>
cudaError_t launch_rows(const QuantGemmArgs& a, cudaStream_t stream) {
  // Whole 32-element blocks of x start 16-byte aligned when every row does; int4 blocks
  // are 16 bytes and int8 blocks 32, so one aligned row start and stride serves both.
  const bool x_vec = packable<T>(a.x, a.x_stride_row, kBlockK);
  const bool q_vec = reinterpret_cast<uintptr_t>(a.qweight) % 16 == 0 && a.q_stride_row % 16 == 0;
  const int64_t row_chunks = (a.m + ROWS - 1) / ROWS;
  const dim3 grid(static_cast<unsigned>((a.n + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>(row_chunks < kMaxGridY ? row_chunks : kMaxGridY));
  quant_gemm_kernel<T, BITS, ROWS><<<grid, kWarpsPerBlock * kWarp, 0, stream>>>(a, x_vec, q_vec);
  return cudaGetLastError();
}

template <typename T, int BITS>
cudaError_t launch(const QuantGemmArgs& a, cudaStream_t stream) {
  if (a.m == 1) return launch_rows<T, BITS, 1>(a, stream);
  if (a.m == 2) return launch_rows<T, BITS, 2>(a, stream);
  if (a.m <= 4) return launch_rows<T, BITS, 4>(a, stream);
  return launch_rows<T, BITS, kMaxRows>(a, stream);
}

}  // namespace

cudaError_t quant_gemm(DType dtype, const QuantGemmArgs& args, cudaStream_t stream) {
  if (args.m == 0 || args.n == 0) return cudaSuccess;
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    return args.bits == 4 ? launch<T, 4>(args, stream) : launch<T, 8>(args, stream);
  });
}

}  // namespace forge::cuda
