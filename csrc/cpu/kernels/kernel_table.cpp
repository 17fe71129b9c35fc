// Instantiates every CPU kernel for one instruction set (FORGE_ISA, set by CMake) and
// exports them as one table. Torch-free, so each of the four compiles (avx512bf16, avx512,
// avx2, baseline) takes seconds.
#include "cpu/kernels/kernel_table.h"

#include "cpu/kernels/activation.h"
#include "cpu/kernels/paged_attention.h"
#include "cpu/kernels/quant_gemm.h"
#include "cpu/kernels/reshape_and_cache.h"
#include "cpu/kernels/rms_norm.h"
#include "cpu/kernels/rotary_embedding.h"
#include "cpu/kernels/softmax.h"
#include "cpu/kernels/sum.h"

#define FORGE_CONCAT_(a, b) a##b
#define FORGE_CONCAT(a, b) FORGE_CONCAT_(a, b)
#define FORGE_STRINGIFY_(a) #a
#define FORGE_STRINGIFY(a) FORGE_STRINGIFY_(a)

namespace forge::cpu {
namespace FORGE_ISA {
namespace {

// Slots are filled by name: two ops of one signature cannot be swapped silently, and a
// slot left out is a compile error (-Werror=missing-field-initializers, cmake/cpu.cmake).
template <typename T>
constexpr TypedKernels<T> typed() {
  return {
      .paged_attention = &paged_attention_kernel<T>,
      .rms_norm = &rms_norm_kernel<T>,
      .fused_add_rms_norm = &fused_add_rms_norm_kernel<T>,
      .silu_and_mul = &gated_activation_kernel<T, Activation::kSilu>,
      .gelu_and_mul = &gated_activation_kernel<T, Activation::kGelu>,
      .gelu_tanh_and_mul = &gated_activation_kernel<T, Activation::kGeluTanh>,
      .rotary_embedding = &rotary_embedding_kernel<T>,
      .softmax = &softmax_kernel<T>,
      .topk_softmax = &topk_softmax_kernel<T>,
      .sum = &sum_kernel<T>,
      .quant_gemm = &quant_gemm_kernel<T>,
      .quant_dequantize = &quant_dequantize_kernel<T>,
  };
}

constexpr KernelTable kTable = {
    .isa = FORGE_STRINGIFY(FORGE_ISA),
    .f32_kernels = typed<float>(),
    .bf16_kernels = typed<::forge::bf16>(),
    .fp16_kernels = typed<::forge::fp16>(),
    .reshape_and_cache = &reshape_and_cache_kernel,
};

}  // namespace
}  // namespace FORGE_ISA

const KernelTable* FORGE_CONCAT(kernel_table_, FORGE_ISA)() { return &FORGE_ISA::kTable; }

}  // namespace forge::cpu
