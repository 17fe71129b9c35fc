// CPU launcher for rotary_embedding (checks: launch/rotary_embedding.cpp, kernel:
// cpu/kernels/rotary_embedding.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void rotary_embedding_cpu(const at::Tensor& positions, at::Tensor& query,
                          const std::optional<at::Tensor>& key, int64_t head_size,
                          const at::Tensor& cos_sin_cache, bool is_neox) {
  // prepare puts every tensor on query's device (and validates the positions there only
  // when it is the CPU); the kernel reads them on the host.
  FORGE_CHECK_CPU("rotary_embedding", query);
  const std::optional<RotaryArgs> args =
      prepare_rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox);
  if (!args) return;
  static CallCounter counter("rotary_embedding");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("rotary_embedding", query.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().rotary_embedding(*args); });
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) { m.impl("rotary_embedding", &rotary_embedding_cpu); }

}  // namespace forge
