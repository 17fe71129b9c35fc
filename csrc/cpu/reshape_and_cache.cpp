// CPU launcher for reshape_and_cache (checks: launch/reshape_and_cache.cpp, kernel:
// cpu/kernels/reshape_and_cache.h). The kernel copies bytes, so one instance serves every
// dtype: no dtype dispatch.
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void reshape_and_cache_cpu(at::Tensor& key_cache, at::Tensor& value_cache, const at::Tensor& key,
                           const at::Tensor& value, const at::Tensor& slot_mapping) {
  // prepare puts every tensor on key's device (and validates the slots there only when it
  // is the CPU); the kernel reads them on the host.
  FORGE_CHECK_CPU("reshape_and_cache", key);
  const std::optional<ReshapeAndCacheArgs> args =
      prepare_reshape_and_cache(key_cache, value_cache, key, value, slot_mapping);
  if (!args) return;
  static CallCounter counter("reshape_and_cache");
  counter.add();
  cpu::kernels().reshape_and_cache(*args);
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) { m.impl("reshape_and_cache", &reshape_and_cache_cpu); }

}  // namespace forge
