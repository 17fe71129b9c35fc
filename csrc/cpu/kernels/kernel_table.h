// The CPU kernels, compiled once per instruction set and picked at run time.
//
// kernel_table.cpp is compiled once per variant (cmake/cpu.cmake): AVX-512 with BF16
// conversions and VNNI, AVX-512 (F/BW/VL/DQ + FMA + F16C), AVX2 (+ FMA + F16C) and baseline
// x86-64 (or the target's default elsewhere), each into its own namespace. The first
// call picks the best table the CPU supports; FORGE_CPU_ISA=avx512bf16|avx512|avx2|baseline
// forces one (an error if the CPU lacks it): how the tests run every variant here.
#pragma once

#include <type_traits>

#include "common/float_types.h"
#include "common/kernel_args.h"

namespace forge::cpu {

template <typename T>
struct TypedKernels {
  void (*paged_attention)(const PagedAttentionArgs&);
  void (*rms_norm)(const RmsNormArgs&);
  void (*fused_add_rms_norm)(const RmsNormArgs&);
  void (*silu_and_mul)(const GatedActivationArgs&);
  void (*gelu_and_mul)(const GatedActivationArgs&);
  void (*gelu_tanh_and_mul)(const GatedActivationArgs&);
  void (*rotary_embedding)(const RotaryArgs&);
  void (*softmax)(const SoftmaxArgs&);
  void (*topk_softmax)(const TopkSoftmaxArgs&);
  void (*sum)(const SumArgs&);
  void (*quant_gemm)(const QuantGemmArgs&);
  void (*quant_dequantize)(const QuantDequantArgs&);
};

struct KernelTable {
  const char* isa;
  TypedKernels<float> f32_kernels;
  TypedKernels<::forge::bf16> bf16_kernels;
  TypedKernels<::forge::fp16> fp16_kernels;
  void (*reshape_and_cache)(const ReshapeAndCacheArgs&);

  template <typename T>
  const TypedKernels<T>& of() const {
    if constexpr (std::is_same_v<T, float>)
      return f32_kernels;
    else if constexpr (std::is_same_v<T, ::forge::bf16>)
      return bf16_kernels;
    else
      return fp16_kernels;
  }
};

// The table for this CPU (chosen once, thread-safe). Throws std::runtime_error when
// FORGE_CPU_ISA names an unknown or unsupported instruction set.
const KernelTable& kernels();

// Instruction sets compiled into this build and supported by this CPU, best first.
const char* available_isas();

}  // namespace forge::cpu
