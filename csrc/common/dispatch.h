// Turn a runtime dtype into the kernel's element type, through the one dtype vocabulary
// (DType, common/dtype.h): an unsupported dtype is an error naming the op and the dtype
// (dtype_of) and never reaches a kernel.
#pragma once

#include <torch/types.h>

#include "common/checks.h"
#include "common/float_types.h"

#define FORGE_DISPATCH_FLOAT_TYPES(op, dtype, scalar_t, ...) \
  [&] {                                                      \
    switch (::forge::dtype_of(op, dtype)) {                  \
      case ::forge::DType::kFloat32: {                       \
        using scalar_t = float;                              \
        return __VA_ARGS__();                                \
      }                                                      \
      case ::forge::DType::kBFloat16: {                      \
        using scalar_t = ::forge::bf16;                      \
        return __VA_ARGS__();                                \
      }                                                      \
      case ::forge::DType::kFloat16:                         \
      default: {                                             \
        using scalar_t = ::forge::fp16;                      \
        return __VA_ARGS__();                                \
      }                                                      \
    }                                                        \
  }()
