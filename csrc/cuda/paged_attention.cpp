// CUDA launcher for paged_attention (kernels: cuda/kernels/paged_attention.cu): picks
// the rows per work item and the KV splits, and allocates the split scratch on the
// current stream through torch's caching allocator (CUDA-graph safe).
#include <torch/library.h>

#include <mutex>
#include <unordered_map>

#include "common/call_counter.h"
#include "common/split_heuristics.h"
#include "cuda/launch_utils.h"
#include "launch/prepare.h"

namespace forge {
namespace {

// What the launcher asks of a device, read once per device (not on every call).
struct DeviceLimits {
  int sms = 0;
  int smem_optin = 0;
};

const DeviceLimits& device_limits(int device) {
  static std::mutex mutex;
  static std::unordered_map<int, DeviceLimits> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(device);
  if (it == cache.end()) {
    DeviceLimits limits;
    FORGE_CHECK_LAUNCH("paged_attention",
                       cudaDeviceGetAttribute(&limits.sms, cudaDevAttrMultiProcessorCount, device));
    FORGE_CHECK_LAUNCH("paged_attention",
                       cudaDeviceGetAttribute(&limits.smem_optin,
                                              cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    it = cache.emplace(device, limits).first;
  }
  return it->second;
}

void paged_attention_cuda(at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
                          const at::Tensor& value_cache, const at::Tensor& query_start_loc,
                          const at::Tensor& seq_lens, const at::Tensor& block_table, double scale,
                          int64_t sliding_window, double softcap) {
  constexpr const char* kOp = "paged_attention";
  FORGE_CHECK_CUDA_TENSOR(kOp, query);
  const auto args = prepare_paged_attention(out, query, key_cache, value_cache, query_start_loc,
                                            seq_lens, block_table, scale, sliding_window, softcap);
  if (!args) return;
  const c10::cuda::CUDAGuard guard(query.device());
  const int device = query.device().index();
  const auto dtype = cuda::dtype_of(kOp, query.scalar_type());
  const int num_tokens = static_cast<int>(query.size(0));
  const int group = args->num_heads / args->num_kv_heads;
  const int block_q = cuda::attention_block_q(num_tokens, args->num_seqs, group);
  const size_t smem = cuda::attention_smem_bytes(dtype, block_q, group, args->head_size);
  const DeviceLimits& limits = device_limits(device);
  const int smem_limit = limits.smem_optin;
  TORCH_CHECK(smem <= static_cast<size_t>(smem_limit), kOp, ": ", group,
              " query heads per KV head with head_size ", args->head_size, " need ", smem,
              " bytes of shared memory per block; this GPU allows ", smem_limit);

  cuda::AttentionSplits splits;
  splits.num_splits =
      cuda_attention_splits(num_tokens, args->num_seqs, args->num_kv_heads, limits.sms);
  at::Tensor partial_out, partial_stats;
  if (splits.num_splits > 1) {
    const auto f32 = query.options().dtype(at::kFloat);
    partial_out = at::empty({splits.num_splits, num_tokens, args->num_heads, args->head_size}, f32);
    partial_stats = at::empty({splits.num_splits, num_tokens, args->num_heads, 2}, f32);
    splits.partial_out = partial_out.data_ptr<float>();
    splits.partial_stats = partial_stats.data_ptr<float>();
  }
  static CallCounter counter("paged_attention");
  counter.add();
  FORGE_CHECK_LAUNCH(kOp, cuda::paged_attention(dtype, *args, num_tokens, block_q, splits,
                                                cuda::current_stream(query)));
}

}  // namespace

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("paged_attention", &paged_attention_cuda); }

}  // namespace forge
