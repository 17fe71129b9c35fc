// How many pieces paged attention cuts one work item's keys into: one pure function per
// backend, apart from the kernels, so the policy is read and tested in one place
// (tests/kernels/test_split_heuristics.py calls them through csrc/common/heuristics.cpp;
// the Triton backend's twin is vllm_forge.triton.paged_attention.decode_splits).
// Torch-free; host code only.
#pragma once

#include <algorithm>

namespace forge {

// CPU: a split must stream at least this many KV blocks, or merging costs more than the
// parallelism gains.
constexpr int kCpuMinBlocksPerSplit = 4;

// CPU (csrc/cpu/kernels/paged_attention.h). n_tiles work items (query tiles x KV heads)
// over `threads` OpenMP threads; n_blocks: KV blocks one item reads. With fewer items
// than twice the threads (small decode batches, long contexts) each item's keys are cut
// into enough block ranges that every thread streams; otherwise items are not split.
inline int cpu_attention_splits(int n_tiles, int threads, int n_blocks) {
  if (n_tiles <= 0) return 1;
  const int wanted = n_tiles < 2 * threads ? (2 * threads + n_tiles - 1) / n_tiles : 1;
  return std::max(1, std::min(wanted, n_blocks / kCpuMinBlocksPerSplit));
}

// CUDA: split until about this many thread blocks per SM, at most this many splits.
constexpr int kCudaBlocksPerSm = 2;
constexpr int kCudaMaxSplits = 16;

// CUDA (csrc/cuda/paged_attention.cpp). Only pure decode batches (one query token per
// sequence) split: there num_seqs x num_kv_heads blocks may leave most of the `sms`
// streaming multiprocessors idle. The smallest power of two that reaches
// kCudaBlocksPerSm blocks per SM, at most kCudaMaxSplits.
inline int cuda_attention_splits(int num_tokens, int num_seqs, int num_kv_heads, int sms) {
  if (num_tokens != num_seqs || num_seqs <= 0) return 1;
  const long long items = static_cast<long long>(num_seqs) * num_kv_heads;
  int splits = 1;
  while (splits < kCudaMaxSplits && items * splits < static_cast<long long>(kCudaBlocksPerSm) * sms)
    splits *= 2;
  return splits;
}

}  // namespace forge
