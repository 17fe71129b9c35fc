// softmax / log_softmax over rows (vocabulary-wide rows: online max and sum, then a
// second pass that writes), and topk_softmax (MoE routing: k block-wide arg-max rounds
// over the probabilities kept in shared memory).
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kThreads = 512;

// Combine two (max, sum of exp(x - max)) pairs. A NaN anywhere makes the row NaN, as in
// torch (fmaxf alone would drop it).
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  if (isnan(m) || isnan(m2)) {
    m = s = NAN;
    return;
  }
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;
  s = s * __expf(m - mm) + s2 * __expf(m2 - mm);
  m = mm;
}

template <typename T>
__global__ void softmax_kernel(SoftmaxArgs a) {
  __shared__ float scratch[kWarp];
  __shared__ float s_scratch[kWarp];
  const int64_t row = blockIdx.x;
  const T* in = static_cast<const T*>(a.input) + row * a.in_stride;
  T* out = static_cast<T*>(a.out) + row * a.out_stride;
  const float inv_t = a.temperature != nullptr ? 1.f / a.temperature[row] : 1.f;

  float m = -INFINITY, s = 0.f;
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
    merge(m, s, to_float(in[c]) * inv_t, 1.f);
  }
  // Block-wide merge: warp shuffles, then one value per warp.
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) {
    scratch[warp] = m;
    s_scratch[warp] = s;
  }
  __syncthreads();
  m = lane < blockDim.x / kWarp ? scratch[lane] : -INFINITY;
  s = lane < blockDim.x / kWarp ? s_scratch[lane] : 0.f;
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
  const float log_sum = logf(s), inv_sum = 1.f / s;
  for (int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
    const float z = to_float(in[c]) * inv_t - m;
    out[c] = from_float<T>(a.log ? z - log_sum : __expf(z) * inv_sum);
  }
}

template <typename T>
__global__ void topk_softmax_kernel(TopkSoftmaxArgs a) {
  __shared__ float probs[kMaxTopkExperts];
  __shared__ float scratch[kWarp];
  __shared__ float best_value[kWarp];
  __shared__ int best_index[kWarp];
  const int64_t row = blockIdx.x;
  const T* gating = static_cast<const T*>(a.gating) + row * a.gating_stride;

  float m = -INFINITY;
  for (int e = threadIdx.x; e < a.experts; e += blockDim.x) {
    probs[e] = to_float(gating[e]);
    m = fmaxf(m, probs[e]);
  }
  m = block_max(m, scratch);
  float s = 0.f;
  for (int e = threadIdx.x; e < a.experts; e += blockDim.x) {
    probs[e] = __expf(probs[e] - m);
    s += probs[e];
  }
  s = block_sum(s, scratch);

  float chosen_sum = 0.f;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  for (int j = 0; j < a.k; ++j) {
    // Arg-max with the lowest index winning ties (a stable order).
    float v = -1.f;
    int idx = a.experts;
    for (int e = threadIdx.x; e < a.experts; e += blockDim.x) {
      if (probs[e] > v) {
        v = probs[e];
        idx = e;
      }
    }
    for (int o = kWarp / 2; o > 0; o /= 2) {
      const float v2 = __shfl_xor_sync(0xffffffffu, v, o);
      const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
      if (v2 > v || (v2 == v && i2 < idx)) {
        v = v2;
        idx = i2;
      }
    }
    __syncthreads();
    if (lane == 0) {
      best_value[warp] = v;
      best_index[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < blockDim.x / kWarp; ++w) {
        if (best_value[w] > v || (best_value[w] == v && best_index[w] < idx)) {
          v = best_value[w];
          idx = best_index[w];
        }
      }
      a.topk_weights[row * a.k + j] = v / s;
      a.topk_ids[row * a.k + j] = idx;
      chosen_sum += v / s;
      probs[idx] = -2.f;  // never chosen again
    }
    __syncthreads();
  }
  if (threadIdx.x == 0 && a.renormalize) {
    for (int j = 0; j < a.k; ++j) a.topk_weights[row * a.k + j] /= chosen_sum;
  }
}

}  // namespace

cudaError_t softmax(DType dtype, const SoftmaxArgs& args, cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    softmax_kernel<T><<<static_cast<unsigned>(args.rows), kThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t topk_softmax(DType dtype, const TopkSoftmaxArgs& args, cudaStream_t stream) {
  if (args.experts > kMaxTopkExperts) return cudaErrorInvalidValue;
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    topk_softmax_kernel<T><<<static_cast<unsigned>(args.rows), 256, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

}  // namespace forge::cuda
