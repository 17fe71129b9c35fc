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
// per block four 4-byte loads of int4 codes (eight for int8: the tiled form keeps 4 k of
// a feature in one 32-bit word of each 64-byte chunk), unpacked and dequantised into
// 32 fp32 registers exactly as the reference does (q * s, then + m, rounded each time),
// then multiplied into the ROWS accumulators with x read 16 bytes at a time. The lanes'
// partial sums meet in a warp shuffle. Each weight byte is read once per ROWS rows: the
// kernel is bound by the weight's bytes for decode and small batches; large batches
// re-read W (from L2) every ROWS rows and do fp32 FMAs, not tensor-core MMAs.
//
// A 32-weight block is two halves of 16 consecutive k; groups are at least 16 wide and
// aligned, so each half has one group.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kBlockK = 32;  // weights per block of codes
constexpr int kHalf = 16;
constexpr int kTileN = 16;  // output features per tile of the tiled form
constexpr int kMaxRows = 8;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float group_value(const void* p, bool fp16, int64_t i) {
  return fp16 ? __half2float(static_cast<const __half*>(p)[i]) : static_cast<const float*>(p)[i];
}

// The 32-bit lane of feature l in chunk c of a tile (bytes 64 c + 4 l ..; see the format).
__device__ __forceinline__ uint32_t lane_word(const uint8_t* tile, int64_t c, int l, bool vec) {
  const uint8_t* p = tile + c * 64 + 4 * l;
  if (vec) return *reinterpret_cast<const uint32_t*>(p);
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Codes of feature l of a tile for block b (k = 32 b + j -> q[j]) as floats. The tiled
// form pads k to whole blocks with code 0. int4: chunk 4 b + c holds k = 32 b + 8 c + j
// (j < 4) in the low nibbles of its lane's bytes, + 4 in the high ones; int8: chunk
// 8 b + c holds k = 32 b + 4 c + j in byte j.
template <int BITS>
__device__ __forceinline__ void load_codes(const uint8_t* tile, int l, int64_t b, bool vec,
                                           float (&q)[kBlockK]) {
  if constexpr (BITS == 4) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const uint32_t word = lane_word(tile, 4 * b + c, l, vec);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t byte = (word >> (8 * j)) & 0xFFu;
        q[8 * c + j] = static_cast<float>(byte & 0xFu);
        q[8 * c + 4 + j] = static_cast<float>(byte >> 4);
      }
    }
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const uint32_t word = lane_word(tile, 8 * b + c, l, vec);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        q[4 * c + j] = static_cast<float>(static_cast<int8_t>((word >> (8 * j)) & 0xFFu));
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
  const uint8_t* tile = a.qweight + (n / kTileN) * a.q_stride_tile;
  const int feature = static_cast<int>(n % kTileN);
  const int64_t num_groups = (a.k + a.group_size - 1) / a.group_size;
  const int64_t s_tile = (n / kTileN) * num_groups * kTileN + feature;
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
      load_codes<BITS>(tile, feature, b, q_vec, w);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t kh = k0 + h * kHalf;
        float s = 0.f, mn = 0.f;
        if (kh < a.k) {  // a half wholly past K has no group (nor x) to read
          const int64_t g = s_tile + kh / a.group_size * kTileN;
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
  // Whole 32-element blocks of x start 16-byte aligned when every row does. A lane's
  // codes are 32-bit words of the tiled form (tiles are multiples of 256 bytes).
  const bool x_vec = packable<T>(a.x, a.x_stride_row, kBlockK);
  const bool q_vec = reinterpret_cast<uintptr_t>(a.qweight) % 4 == 0 && a.q_stride_tile % 4 == 0;
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
