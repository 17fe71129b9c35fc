// CPU launcher for paged_attention (checks: launch/paged_attention.cpp, kernel:
// cpu/kernels/paged_attention.h).
#include <torch/library.h>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "launch/prepare.h"

namespace forge {
namespace {

void paged_attention_cpu(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                         const at::Tensor& value_cache, const at::Tensor& query_start_loc,
                         const at::Tensor& seq_lens, const at::Tensor& block_table, double scale,
                         int64_t sliding_window, double softcap) {
  // prepare puts every tensor on query's device (and validates the metadata there only
  // when it is the CPU); the kernel reads them on the host.
  FORGE_CHECK_CPU("paged_attention", query);
  const std::optional<PagedAttentionArgs> args =
      prepare_paged_attention(out, query, key_cache, value_cache, query_start_loc, seq_lens,
                              block_table, scale, sliding_window, softcap);
  if (!args) return;
  static CallCounter counter("paged_attention");
  counter.add();
  FORGE_DISPATCH_FLOAT_TYPES("paged_attention", query.scalar_type(), scalar_t,
                             [&] { cpu::kernels().of<scalar_t>().paged_attention(*args); });
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) { m.impl("paged_attention", &paged_attention_cpu); }

}  // namespace forge
