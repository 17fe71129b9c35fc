// silu_and_mul, gelu_and_mul: out[r, i] = act(in[r, i]) * in[r, d + i].
// Grid: x over chunks of a row, y over rows; 16-byte accesses when alignment allows.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kThreads = 256;

template <Activation ACT>
__device__ __forceinline__ float activate(float x) {
  if constexpr (ACT == Activation::kSilu) {
    return x / (1.f + __expf(-x));
  } else if constexpr (ACT == Activation::kGelu) {
    return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  } else {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.f + tanhf(inner));
  }
}

template <typename T, Activation ACT, bool PACKED>
__global__ void gated_activation_kernel(GatedActivationArgs a) {
  constexpr int N = PACKED ? Pack<T>::kSize : 1;
  const int64_t row = blockIdx.y + static_cast<int64_t>(blockIdx.z) * gridDim.y;
  if (row >= a.rows) return;
  const int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u * N >= a.d) return;
  const T* gate = static_cast<const T*>(a.input) + a.in_rows.offset(row) + u * N;
  const T* up = gate + a.d;
  T* out = static_cast<T*>(a.out) + a.out_rows.offset(row) + u * N;
  Pack<T> g, v, y;
  if constexpr (PACKED) {
    g = load_pack(gate);
    v = load_pack(up);
  } else {
    g.v[0] = *gate;
    v.v[0] = *up;
  }
  for (int j = 0; j < N; ++j) {
    y.v[j] = from_float<T>(activate<ACT>(to_float(g.v[j])) * to_float(v.v[j]));
  }
  if constexpr (PACKED) {
    store_pack(out, y);
  } else {
    *out = y.v[0];
  }
}

template <typename T, Activation ACT>
cudaError_t launch(const GatedActivationArgs& a, cudaStream_t stream) {
  const bool packed = packable<T>(a.input, a.in_rows.inner_stride, a.d) &&
                      packable<T>(a.out, a.out_rows.inner_stride, a.d) &&
                      a.in_rows.outer_stride % Pack<T>::kSize == 0 &&
                      a.out_rows.outer_stride % Pack<T>::kSize == 0;
  const int64_t n = packed ? Pack<T>::kSize : 1;
  const int64_t units = (a.d + n - 1) / n;
  // Rows over y and z: gridDim.y is capped at 65535.
  const int64_t rows_y = a.rows < 65535 ? a.rows : 65535;
  const dim3 grid(static_cast<unsigned>((units + kThreads - 1) / kThreads),
                  static_cast<unsigned>(rows_y),
                  static_cast<unsigned>((a.rows + rows_y - 1) / rows_y));
  if (packed) {
    gated_activation_kernel<T, ACT, true><<<grid, kThreads, 0, stream>>>(a);
  } else {
    gated_activation_kernel<T, ACT, false><<<grid, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t gated_activation(DType dtype, Activation activation, const GatedActivationArgs& args,
                             cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    switch (activation) {
      case Activation::kSilu:
        return launch<T, Activation::kSilu>(args, stream);
      case Activation::kGelu:
        return launch<T, Activation::kGelu>(args, stream);
      case Activation::kGeluTanh:
        return launch<T, Activation::kGeluTanh>(args, stream);
    }
    return cudaErrorInvalidValue;
  });
}

}  // namespace forge::cuda
