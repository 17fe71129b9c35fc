// Unified varlen paged attention on CPU, torch-free.
//
// One call serves a mixed batch of decodes, prefills and chunked prefills. Sequence s
// owns query rows [query_start_loc[s], query_start_loc[s+1]) and has seq_lens[s] tokens
// of context in the paged cache, the last q_len of which are its own new tokens. So query
// token i of s sits at absolute position p = seq_len - q_len + i and attends causally to
// keys max(0, p - window + 1) .. p, read through the block table.
//
// Work item = (sequence, KV head, tile of up to kQueryTile query tokens). All query heads
// of a GQA group and all tokens of the tile share each K/V block, so every K/V row is
// converted to fp32 once per work item and reused by every query row of the tile. The
// softmax is online (running max and sum per query row): scores exist only for one block
// at a time, in a small per-thread buffer, never as a matrix in memory.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/kernels/args.h"
#include "cpu/kernels/convert.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

// Query rows per work item: enough rows that a converted K/V block is reused many times,
// few enough that the fp32 accumulators of a tile stay in L2.
inline int query_tile_tokens(int group_size) { return std::max(1, 32 / group_size); }

struct WorkItem {
  int seq;
  int kv_head;
  int first_token;  // index of the tile's first query token within the sequence
};

template <typename T>
inline void convert_rows(const T* src, int64_t src_stride, int rows, int head_size,
                         float* dst) {
  for (int r = 0; r < rows; ++r) {
    const T* s = src + r * src_stride;
    float* d = dst + static_cast<int64_t>(r) * head_size;
#pragma omp simd
    for (int c = 0; c < head_size; ++c) d[c] = to_float(s[c]);
  }
}

inline float dot(const float* a, const float* b, int n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// Per-thread scratch, sized once per call.
struct Scratch {
  std::vector<float> q;       // [rows, head_size], pre-scaled queries
  std::vector<float> acc;     // [rows, head_size]
  std::vector<float> row_max; // [rows]
  std::vector<float> row_sum; // [rows]
  std::vector<float> k;       // [block_size, head_size]
  std::vector<float> v;       // [block_size, head_size]
  std::vector<float> scores;  // [block_size]

  Scratch(int rows, int head_size, int block_size)
      : q(static_cast<size_t>(rows) * head_size),
        acc(static_cast<size_t>(rows) * head_size),
        row_max(rows),
        row_sum(rows),
        k(static_cast<size_t>(block_size) * head_size),
        v(static_cast<size_t>(block_size) * head_size),
        scores(block_size) {}
};

template <typename T>
void run_work_item(const PagedAttentionArgs& a, const WorkItem& w, int tile_tokens,
                   Scratch& s) {
  const int group = a.num_heads / a.num_kv_heads;
  const int D = a.head_size;
  const int q_begin = a.query_start_loc[w.seq];
  const int q_len = a.query_start_loc[w.seq + 1] - q_begin;
  const int seq_len = a.seq_lens[w.seq];
  const int ctx_before = seq_len - q_len;  // tokens already in the cache before this step
  const int n_tok = std::min(tile_tokens, q_len - w.first_token);
  const int rows = n_tok * group;
  const bool windowed = a.sliding_window > 0;

  // Row r = t * group + g: token first_token + t, query head kv_head * group + g.
  const T* q_base = static_cast<const T*>(a.query);
  for (int t = 0; t < n_tok; ++t) {
    for (int g = 0; g < group; ++g) {
      const T* src = q_base + (q_begin + w.first_token + t) * a.q_stride_token +
                     (w.kv_head * group + g) * a.q_stride_head;
      float* dst = s.q.data() + static_cast<int64_t>(t * group + g) * D;
#pragma omp simd
      for (int c = 0; c < D; ++c) dst[c] = to_float(src[c]) * a.scale;
    }
  }
  std::fill(s.acc.begin(), s.acc.begin() + static_cast<int64_t>(rows) * D, 0.f);
  std::fill(s.row_max.begin(), s.row_max.begin() + rows,
            -std::numeric_limits<float>::infinity());
  std::fill(s.row_sum.begin(), s.row_sum.begin() + rows, 0.f);

  // Keys the whole tile may touch: the first token's window start to the last token.
  const int pos_first = ctx_before + w.first_token;
  const int pos_last = pos_first + n_tok - 1;
  const int key_lo = windowed ? std::max(0, pos_first - a.sliding_window + 1) : 0;
  const int key_hi = pos_last;

  const T* k_base = static_cast<const T*>(a.key_cache);
  const T* v_base = static_cast<const T*>(a.value_cache);
  const int32_t* blocks = a.block_table + w.seq * a.block_table_stride;

  for (int b = key_lo / a.block_size; b <= key_hi / a.block_size; ++b) {
    const int block_first = b * a.block_size;
    const int j0 = std::max(block_first, key_lo);
    const int j1 = std::min(block_first + a.block_size - 1, key_hi);
    const int64_t phys = blocks[b];
    // Only the slots in [j0, j1] are read: the rest of the block may be unwritten.
    convert_rows(k_base + phys * a.k_stride_block + w.kv_head * a.k_stride_head +
                     (j0 - block_first) * a.k_stride_slot,
                 a.k_stride_slot, j1 - j0 + 1, D, s.k.data());
    convert_rows(v_base + phys * a.v_stride_block + w.kv_head * a.v_stride_head +
                     (j0 - block_first) * a.v_stride_slot,
                 a.v_stride_slot, j1 - j0 + 1, D, s.v.data());

    for (int r = 0; r < rows; ++r) {
      const int pos = pos_first + r / group;
      const int lo = std::max(j0, windowed ? pos - a.sliding_window + 1 : 0);
      const int hi = std::min(j1, pos);
      if (lo > hi) continue;
      const float* q = s.q.data() + static_cast<int64_t>(r) * D;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int j = lo; j <= hi; ++j) {
        float x = dot(q, s.k.data() + static_cast<int64_t>(j - j0) * D, D);
        if (a.softcap > 0.f) x = a.softcap * std::tanh(x / a.softcap);
        s.scores[j - lo] = x;
        block_max = std::max(block_max, x);
      }
      const float new_max = std::max(s.row_max[r], block_max);
      const float rescale = std::exp(s.row_max[r] - new_max);
      float* acc = s.acc.data() + static_cast<int64_t>(r) * D;
      float sum = s.row_sum[r] * rescale;
#pragma omp simd
      for (int c = 0; c < D; ++c) acc[c] *= rescale;
      for (int j = lo; j <= hi; ++j) {
        const float p = std::exp(s.scores[j - lo] - new_max);
        sum += p;
        const float* v = s.v.data() + static_cast<int64_t>(j - j0) * D;
#pragma omp simd
        for (int c = 0; c < D; ++c) acc[c] += p * v[c];
      }
      s.row_max[r] = new_max;
      s.row_sum[r] = sum;
    }
  }

  T* out_base = static_cast<T*>(a.out);
  for (int r = 0; r < rows; ++r) {
    const int t = r / group, g = r % group;
    T* dst = out_base + (q_begin + w.first_token + t) * a.out_stride_token +
             (w.kv_head * group + g) * a.out_stride_head;
    const float* acc = s.acc.data() + static_cast<int64_t>(r) * D;
    // Every row sees at least its own key, so row_sum > 0 for valid input.
    const float inv = s.row_sum[r] > 0.f ? 1.f / s.row_sum[r] : 0.f;
    for (int c = 0; c < D; ++c) dst[c] = from_float<T>(acc[c] * inv);
  }
}

}  // namespace detail

// T: float, bf16 or fp16 (query, caches and output share it). Inputs must already be
// validated (see csrc/cpu/paged_attention.cpp): indices in range, q_len <= seq_len.
template <typename T>
void paged_attention_kernel(const PagedAttentionArgs& a) {
  const int group = a.num_heads / a.num_kv_heads;
  const int tile_tokens = detail::query_tile_tokens(group);

  std::vector<detail::WorkItem> items;
  for (int s = 0; s < a.num_seqs; ++s) {
    const int q_len = a.query_start_loc[s + 1] - a.query_start_loc[s];
    for (int t = 0; t < q_len; t += tile_tokens)
      for (int h = 0; h < a.num_kv_heads; ++h) items.push_back({s, h, t});
  }
  const int64_t n_items = static_cast<int64_t>(items.size());

#pragma omp parallel if (n_items > 1)
  {
    detail::Scratch scratch(tile_tokens * group, a.head_size, a.block_size);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_items; ++i)
      detail::run_work_item<T>(a, items[i], tile_tokens, scratch);
  }
}

}  // namespace forge::cpu::FORGE_ISA
