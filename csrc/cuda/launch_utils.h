// What every CUDA launcher does around prepare_<op>: check the op's main tensor is a
// CUDA tensor, guard its device, run on torch's current stream, map the dtype, and turn
// a failed launch into an error naming the op.
#pragma once

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/types.h>

#include "common/checks.h"
#include "cuda/kernels/launch.h"

namespace forge::cuda {

// The one dtype vocabulary (common/dtype.h): dtype_of(op, scalar_type) maps a tensor's
// dtype or raises naming the op.
using ::forge::dtype_of;

inline cudaStream_t current_stream(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

}  // namespace forge::cuda

#define FORGE_CHECK_CUDA_TENSOR(op, t) \
  TORCH_CHECK((t).is_cuda(), op, ": " #t " must be a CUDA tensor, got ", (t).device())

// On failure the runtime's last error is cleared first: left set, it would be raised
// again by the next, unrelated kernel launch (torch checks cudaGetLastError after each).
#define FORGE_CHECK_LAUNCH(op, status)                                                   \
  do {                                                                                   \
    const cudaError_t forge_status_ = (status);                                          \
    if (forge_status_ != cudaSuccess) {                                                  \
      (void)cudaGetLastError();                                                          \
      TORCH_CHECK(false, op, ": CUDA call failed: ", cudaGetErrorString(forge_status_)); \
    }                                                                                    \
  } while (0)
