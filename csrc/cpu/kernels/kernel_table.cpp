// Instantiates every CPU kernel for one instruction set (FORGE_ISA, set by CMake) and
// exports them as one table. Torch-free, so each of the three compiles takes seconds.
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

template <typename T>
constexpr TypedKernels<T> typed() {
  return {
      &paged_attention_kernel<T>,
      &rms_norm_kernel<T>,
      &fused_add_rms_norm_kernel<T>,
      &gated_activation_kernel<T, Activation::kSilu>,
      &gated_activation_kernel<T, Activation::kGelu>,
      &gated_activation_kernel<T, Activation::kGeluTanh>,
      &rotary_embedding_kernel<T>,
      &softmax_kernel<T>,
      &topk_softmax_kernel<T>,
      &sum_kernel<T>,
      &quant_gemm_kernel<T>,
      &quant_dequantize_kernel<T>,
  };
}

constexpr KernelTable kTable = {
    FORGE_STRINGIFY(FORGE_ISA), typed<float>(), typed<::forge::bf16>(), typed<::forge::fp16>(),
    &reshape_and_cache_kernel,
};

}  // namespace
}  // namespace FORGE_ISA

const KernelTable* FORGE_CONCAT(kernel_table_, FORGE_ISA)() { return &FORGE_ISA::kTable; }

}  // namespace forge::cpu
