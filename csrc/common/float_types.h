// Torch-free 16-bit float storage types (conversions: csrc/cpu/kernels/convert.h).
// Kernels load bf16/fp16 into fp32 registers, do all math in fp32 and round once
// on store, which is what the pure-torch references do too.
#pragma once

#include <cstdint>
#include <cstring>

namespace forge {

struct bf16 {
  uint16_t bits;
};

struct fp16 {
  uint16_t bits;
};

}  // namespace forge
