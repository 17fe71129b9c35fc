// Turn a runtime dtype into the kernel's element type. The default case errors with
// the op name and the dtype, so an unsupported dtype never reaches a kernel.
#pragma once

#include <torch/types.h>

#include "common/float_types.h"

#define FORGE_DISPATCH_FLOAT_TYPES(op, dtype, scalar_t, ...)                            \
  [&] {                                                                                \
    switch (dtype) {                                                                   \
      case at::ScalarType::Float: {                                                    \
        using scalar_t = float;                                                        \
        return __VA_ARGS__();                                                          \
      }                                                                                \
      case at::ScalarType::BFloat16: {                                                 \
        using scalar_t = ::forge::bf16;                                                \
        return __VA_ARGS__();                                                          \
      }                                                                                \
      case at::ScalarType::Half: {                                                     \
        using scalar_t = ::forge::fp16;                                                \
        return __VA_ARGS__();                                                          \
      }                                                                                \
      default:                                                                         \
        TORCH_CHECK(false, op, ": unsupported dtype ", (dtype),                       \
                    "; supported: float32, bfloat16, float16");                        \
    }                                                                                  \
  }()
