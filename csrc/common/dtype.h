// The element types of our kernels, torch-free: what a launcher turns the tensor's
// dtype into (float_dtype, csrc/common/checks.h) and what the CPU and CUDA dispatches
// switch on. Adding a dtype is adding it here and to those three switches.
#pragma once

namespace forge {

enum class DType { kFloat32, kBFloat16, kFloat16 };

}  // namespace forge
