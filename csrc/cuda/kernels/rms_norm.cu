// rms_norm and fused_add_rms_norm: one block per row.
//
// The fused form normalises the unrounded fp32 sum input + residual while storing the
// rounded sum into residual. Pass 1 only reads (sum of squares of the sum); pass 2
// re-reads both operands, recomputes the same sum, and writes both outputs: every
// element is read and written by the same thread, so nothing is overwritten early.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T, bool FUSED, bool PACKED>
__global__ void rms_norm_kernel(RmsNormArgs a) {
  __shared__ float scratch[kWarp];
  const int64_t row = blockIdx.x;
  T* out = static_cast<T*>(FUSED ? a.input : a.out) + (FUSED ? a.in_rows : a.out_rows).offset(row);
  const T* in = static_cast<const T*>(a.input) + a.in_rows.offset(row);
  T* res = FUSED ? static_cast<T*>(a.residual) + a.res_rows.offset(row) : nullptr;
  const T* w = static_cast<const T*>(a.weight);
  constexpr int N = PACKED ? Pack<T>::kSize : 1;
  const int64_t units = a.hidden / N;

  float squares = 0.f;
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
    for (int j = 0; j < N; ++j) {
      float x = to_float(in[u * N + j]);
      if constexpr (FUSED) x += to_float(res[u * N + j]);
      squares += x * x;
    }
  }
  const float inv_rms = rsqrtf(block_sum(squares, scratch) / a.hidden + a.epsilon);
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
    Pack<T> x_in, r_in, y_out, r_out;
    if constexpr (PACKED) {
      x_in = load_pack(in + u * N);
      if constexpr (FUSED) r_in = load_pack(res + u * N);
    } else {
      x_in.v[0] = in[u];
      if constexpr (FUSED) r_in.v[0] = res[u];
    }
    for (int j = 0; j < N; ++j) {
      float x = to_float(x_in.v[j]);
      if constexpr (FUSED) {
        x += to_float(r_in.v[j]);
        r_out.v[j] = from_float<T>(x);
      }
      float y = x * inv_rms;
      if (w != nullptr) y *= to_float(w[u * N + j]);
      y_out.v[j] = from_float<T>(y);
    }
    if constexpr (PACKED) {
      if constexpr (FUSED) store_pack(res + u * N, r_out);
      store_pack(out + u * N, y_out);
    } else {
      if constexpr (FUSED) res[u] = r_out.v[0];
      out[u] = y_out.v[0];
    }
  }
}

template <typename T, bool FUSED>
cudaError_t launch(const RmsNormArgs& a, cudaStream_t stream) {
  const RowLayout& out_rows = FUSED ? a.in_rows : a.out_rows;
  bool packed = packable<T>(FUSED ? a.input : a.out, out_rows.inner_stride, a.hidden) &&
                packable<T>(a.input, a.in_rows.inner_stride, a.hidden) &&
                out_rows.outer_stride % Pack<T>::kSize == 0 &&
                a.in_rows.outer_stride % Pack<T>::kSize == 0;
  if (FUSED) {
    packed = packed && packable<T>(a.residual, a.res_rows.inner_stride, a.hidden) &&
             a.res_rows.outer_stride % Pack<T>::kSize == 0;
  }
  const dim3 grid(static_cast<unsigned>(a.rows));
  if (packed) {
    rms_norm_kernel<T, FUSED, true><<<grid, kThreads, 0, stream>>>(a);
  } else {
    rms_norm_kernel<T, FUSED, false><<<grid, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t rms_norm(DType dtype, const RmsNormArgs& args, bool fused, cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    return fused ? launch<T, true>(args, stream) : launch<T, false>(args, stream);
  });
}

}  // namespace forge::cuda
