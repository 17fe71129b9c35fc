// The split heuristics (split_heuristics.h) as plain C functions, so the tests can call
// each backend's policy with any thread or SM count, on any build (through ctypes).
#include "common/split_heuristics.h"

extern "C" int forge_cpu_attention_splits(int n_tiles, int threads, int n_blocks) {
  return forge::cpu_attention_splits(n_tiles, threads, n_blocks);
}

extern "C" int forge_cuda_attention_splits(int num_tokens, int num_seqs, int num_kv_heads,
                                           int sms) {
  return forge::cuda_attention_splits(num_tokens, num_seqs, num_kv_heads, sms);
}
