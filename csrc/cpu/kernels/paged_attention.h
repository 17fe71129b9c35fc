// Unified varlen paged attention on CPU, torch-free.
//
// One call serves a mixed batch of decodes, prefills and chunked prefills. Sequence s
// owns query rows [query_start_loc[s], query_start_loc[s+1]) and has seq_lens[s] tokens
// of context in the paged cache, the last q_len of which are its own new tokens. So query
// token i of s sits at absolute position p = seq_len - q_len + i and attends causally to
// keys max(0, p - window + 1) .. p, read through the block table.
//
// Cache layout inside one (block, KV head): keys transposed, [head_size][block_size]
// (key_cache stride(2) == 1), values [block_size][head_size]. Scores for 16 keys are then
// 16-lane FMAs over head_size with no horizontal sums, and P.V is 16-lane FMAs over
// head_size: both stream the cache once, in order, converting bf16/fp16 in registers.
//
// Work item = (sequence, KV head, tile of query tokens). Every query head of the GQA
// group and every token of the tile share each K/V block, so each K/V byte is read once
// per work item (decode: once per KV head). Softmax is online (running max and sum per
// query row); scores exist only for one block, in a small per-thread buffer.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "common/kernel_args.h"
#include "common/split_heuristics.h"
#include "cpu/kernels/attention_bf16_dot.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/prefetch.h"
#include "cpu/kernels/simd.h"
#include "cpu/kernels/vec_math.h"

namespace forge::cpu::FORGE_ISA {

namespace detail {

// Query rows per work item: enough that each K/V block feeds many rows, few enough that
// the rows' fp32 state stays in L1/L2.
inline int query_tile_tokens(int group_size) { return std::max(1, 64 / group_size); }

// Rows computed together: their accumulators live in registers (32 zmm under AVX-512,
// 16 ymm under AVX2 where one 16-lane vector takes two).
#if defined(__AVX512F__)
constexpr int kRowBlock = 8;
#else
constexpr int kRowBlock = 4;
#endif

struct WorkItem {
  int seq;
  int kv_head;
  int first_token;  // index of the tile's first query token within the sequence
  // Split-KV: only keys in [key_begin, key_end], and unnormalised results to partial
  // slot `partial` (merged afterwards), instead of the output.
  int key_begin = 0;
  int key_end = std::numeric_limits<int>::max();
  int partial = -1;
};

// Unnormalised results of split work items: o [rows, D], running max and sum [rows].
struct Partials {
  float* o;
  float* m;
  float* l;
  int max_rows;
  int D;
};

inline int tile_rows(const PagedAttentionArgs& a, const WorkItem& w, int tile_tokens) {
  const int q_len = a.query_start_loc[w.seq + 1] - a.query_start_loc[w.seq];
  return std::min(tile_tokens, q_len - w.first_token) * (a.num_heads / a.num_kv_heads);
}

// The keys a tile (or split) reads: from the first token's window start, or key_begin,
// to the last token, or key_end.
inline void tile_key_range(const PagedAttentionArgs& a, const WorkItem& w, int tile_tokens, int* lo,
                           int* hi) {
  const int q_len = a.query_start_loc[w.seq + 1] - a.query_start_loc[w.seq];
  const int pos_first = a.seq_lens[w.seq] - q_len + w.first_token;
  *lo = a.sliding_window > 0 ? std::max(0, pos_first - a.sliding_window + 1) : 0;
  *hi = pos_first + std::min(tile_tokens, q_len - w.first_token) - 1;
  *lo = std::max(*lo, w.key_begin);
  *hi = std::min(*hi, w.key_end);
}

// Normalise fp32 rows o [rows, D] by their sums l and store them as the tile's output.
template <typename T>
inline void write_rows(const PagedAttentionArgs& a, const WorkItem& w, int rows, const float* o,
                       const float* l) {
  const int group = a.num_heads / a.num_kv_heads;
  const int q_begin = a.query_start_loc[w.seq];
  T* out_base = static_cast<T*>(a.out);
  for (int r = 0; r < rows; ++r) {
    T* dst = out_base + (q_begin + w.first_token + r / group) * a.out_stride_token +
             (w.kv_head * group + r % group) * a.out_stride_head;
    const float* src = o + static_cast<int64_t>(r) * a.head_size;
    // Every row sees at least its own key, so its sum is > 0 for valid input.
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma omp simd
    for (int c = 0; c < a.head_size; ++c) dst[c] = from_float<T>(src[c] * inv);
  }
}

// Independent 16-lane accumulators per helper call: enough to cover FMA latency (two
// FMA pipes x about 4 cycles) without spilling (32 zmm under AVX-512, 16 ymm under AVX2,
// where one 16-lane vector takes two).
#if defined(__AVX512F__)
constexpr int kAccumulators = 8;
#else
constexpr int kAccumulators = 4;
#endif

// 16-lane groups processed together for R rows: at least kAccumulators / 2 independent
// chains, and each loaded cache vector feeds several rows.
template <int R>
constexpr int lane_groups() {
  return R >= 4 ? kAccumulators / 4 : kAccumulators / 2;
}

// bf16 caches on AVX512-BF16 use the dot-product micro-kernels (attention_bf16_dot.h)
// when head_size is a multiple of their 32 columns (bf16_dot::kPairLanes).
#if defined(__AVX512BF16__)
template <typename T>
constexpr bool kBf16Dot = std::is_same_v<T, bf16>;
#else
template <typename T>
constexpr bool kBf16Dot = false;
#endif

// 32-column groups per dot-product call for R rows: about 16 accumulators (two per group
// and row) hide the dot-product latency and leave registers for the cache rows.
template <int R>
constexpr int dot_groups() {
  return R >= 4 ? 1 : 2;
}

// s[r][c .. c + 16 C) = q[r] . K[:, c .. c + 16 C) for R rows; kt is the [D][bs] key tile.
template <typename T, int R, int C>
inline void score_lanes(const float* q, int D, const T* kt, int bs, int c, float* s, int s_stride,
                        const PrefetchSpan& pf) {
  const SpreadPrefetch prefetch(pf, D);
  vfloat acc[R][C] = {};
  for (int d = 0; d < D; ++d) {
    prefetch.at(d);
    vfloat k[C];
    for (int g = 0; g < C; ++g) k[g] = load16(kt + static_cast<int64_t>(d) * bs + c + g * kLanes);
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < C; ++g) acc[r][g] += k[g] * q[r * D + d];
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) store16(s + r * s_stride + c + g * kLanes, acc[r][g]);
}

// o[r][c .. c + 16 C) += sum_j p[r][j] * V[j][c .. c + 16 C) for j in [j0, j1]; v is the
// [bs][D] value tile.
template <typename T, int R, int C>
inline void accumulate_lanes(const float* p, int p_stride, const T* v, int D, int j0, int j1, int c,
                             float* o, const PrefetchSpan& pf) {
  const SpreadPrefetch prefetch(pf, j1 - j0 + 1);
  vfloat acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) acc[r][g] = load16(o + r * D + c + g * kLanes);
  for (int j = j0; j <= j1; ++j) {
    prefetch.at(j - j0);
    vfloat x[C];
    for (int g = 0; g < C; ++g) x[g] = load16(v + static_cast<int64_t>(j) * D + c + g * kLanes);
    for (int r = 0; r < R; ++r) {
      const float pj = p[r * p_stride + j];
      for (int g = 0; g < C; ++g) acc[r][g] += x[g] * pj;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) store16(o + r * D + c + g * kLanes, acc[r][g]);
}

// The next K/V tile a thread reads and its last in-block key `hi`: prefetched while the
// current one is computed, since blocks are scattered through the cache and the hardware
// prefetcher cannot guess their address. Value rows past `hi` are not fetched (a short
// context uses a fraction of its block); the transposed key tile is fetched whole, as
// each of its rows holds every key.
template <typename T>
struct NextTile {
  const T* kt = nullptr;  // [D][bs]
  const T* vt = nullptr;  // [bs][D]
  int hi = -1;
};

// Part `part` of `parts` of the next K tile's lines; spreading the requests over the
// current block's work keeps them flowing.
template <typename T>
inline PrefetchSpan key_span(const NextTile<T>& n, int D, int bs, int part, int parts) {
  return part_of(n.kt, static_cast<int64_t>(D) * bs * sizeof(T), part, parts);
}

// Likewise the next V tile's rows [0, hi].
template <typename T>
inline PrefetchSpan value_span(const NextTile<T>& n, int D, int part, int parts) {
  return part_of(n.vt, static_cast<int64_t>(D) * (n.hi + 1) * sizeof(T), part, parts);
}

// Calls fn.template operator()<R>(first_row) over rows in blocks of kRowBlock, then the tail.
template <typename F>
inline void for_row_blocks(int rows, F&& fn) {
  int r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock) fn.template operator()<kRowBlock>(r);
  // Tail: at most kRowBlock - 1 rows, split into blocks of 4, 2, 1.
  if (kRowBlock > 4 && rows - r >= 4) {
    fn.template operator()<4>(r);
    r += 4;
  }
  if (rows - r >= 2) {
    fn.template operator()<2>(r);
    r += 2;
  }
  if (rows - r == 1) fn.template operator()<1>(r);
}

// Cache-line aligned per-thread buffer: 64-byte vector loads of a row never straddle two
// lines (plain new[] alignment varies with the heap's state, and so did the speed).
template <typename E>
struct AlignedBuffer {
  struct Free {
    void operator()(E* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<E[], Free> data;
  explicit AlignedBuffer(size_t n)
      : data(static_cast<E*>(
            ::operator new[](std::max<size_t>(n, 1) * sizeof(E), std::align_val_t(64)))) {}
  E* get() const { return data.get(); }
  E& operator[](size_t i) const { return data[i]; }
};

// max(x[lo .. hi]) in 16-lane vectors (compilers leave a std::max reduction as a scalar
// chain, which was a tenth of the time of small decodes).
inline float range_max(const float* x, int lo, int hi) {
  float m = -std::numeric_limits<float>::infinity();
  int j = lo;
  if (hi - lo + 1 >= kLanes) {
    vfloat v = load16(x + j);
    for (j += kLanes; j + kLanes <= hi + 1; j += kLanes) {
      const vfloat y = load16(x + j);
      v = v > y ? v : y;
    }
    for (int i = 0; i < kLanes; ++i) m = std::max(m, v[i]);
  }
  for (; j <= hi; ++j) m = std::max(m, x[j]);
  return m;
}

// Per-thread scratch, sized once per call.
struct Scratch {
  AlignedBuffer<float> q;       // [rows, D], pre-scaled
  AlignedBuffer<float> out;     // [rows, D]
  AlignedBuffer<float> scores;  // [rows, block_size]: scores, then probabilities
  AlignedBuffer<float> row_max;
  AlignedBuffer<float> row_sum;
  AlignedBuffer<bf16> q16;  // [rows, D], unscaled (bf16 dot-product path only, else empty)
  AlignedBuffer<bf16> p16;  // [rows, block_size]: probabilities rounded to bf16 (same)

  // bf16_dot: whether the bf16 dot-product path may run (kBf16Dot<T>), which alone
  // uses q16 and p16.
  Scratch(int rows, int D, int bs, bool bf16_dot)
      : q(static_cast<size_t>(rows) * D),
        out(static_cast<size_t>(rows) * D),
        scores(static_cast<size_t>(rows) * bs),
        row_max(rows),
        row_sum(rows),
        q16(bf16_dot ? static_cast<size_t>(rows) * D : 0),
        p16(bf16_dot ? static_cast<size_t>(rows) * bs : 0) {}
};

// The first block a work item reads, with its used keys.
template <typename T>
inline NextTile<T> first_tile(const PagedAttentionArgs& a, const WorkItem& w, int tile_tokens) {
  NextTile<T> n;
  int key_lo, key_hi;
  tile_key_range(a, w, tile_tokens, &key_lo, &key_hi);
  if (key_lo > key_hi) return n;
  const int first = key_lo / a.block_size * a.block_size;
  const int64_t phys = a.block_table[w.seq * a.block_table_stride + key_lo / a.block_size];
  n.kt = static_cast<const T*>(a.key_cache) + phys * a.k_stride_block + w.kv_head * a.k_stride_head;
  n.vt =
      static_cast<const T*>(a.value_cache) + phys * a.v_stride_block + w.kv_head * a.v_stride_head;
  n.hi = std::min(a.block_size - 1, key_hi - first);
  return n;
}

// `after`: the work item this thread runs next (or nullptr); its first block is
// prefetched during this item's last block.
template <typename T>
void run_work_item(const PagedAttentionArgs& a, const WorkItem& w, const WorkItem* after,
                   int tile_tokens, Scratch& s, const Partials& partials) {
  const int group = a.num_heads / a.num_kv_heads;
  const int D = a.head_size;
  const int bs = a.block_size;
  const int q_begin = a.query_start_loc[w.seq];
  const int q_len = a.query_start_loc[w.seq + 1] - q_begin;
  const int seq_len = a.seq_lens[w.seq];
  const int n_tok = std::min(tile_tokens, q_len - w.first_token);
  const int rows = n_tok * group;
  const bool windowed = a.sliding_window > 0;
  const bool capped = a.softcap > 0.f;
  const bool dot = kBf16Dot<T> && D % bf16_dot::kPairLanes == 0;

  // Row r = t * group + g: query token first_token + t, query head kv_head * group + g.
  const T* q_base = static_cast<const T*>(a.query);
  for (int r = 0; r < rows; ++r) {
    const T* src = q_base + (q_begin + w.first_token + r / group) * a.q_stride_token +
                   (w.kv_head * group + r % group) * a.q_stride_head;
    float* dst = s.q.get() + static_cast<int64_t>(r) * D;
#pragma omp simd
    for (int c = 0; c < D; ++c) dst[c] = to_float(src[c]) * a.scale;
    if constexpr (kBf16Dot<T>)
      if (dot) std::copy(src, src + D, s.q16.get() + static_cast<int64_t>(r) * D);
  }
  std::fill(s.out.get(), s.out.get() + static_cast<int64_t>(rows) * D, 0.f);
  std::fill(s.row_max.get(), s.row_max.get() + rows, -std::numeric_limits<float>::infinity());
  std::fill(s.row_sum.get(), s.row_sum.get() + rows, 0.f);

  // Keys the tile (or this split of it) may touch.
  const int pos_first = seq_len - q_len + w.first_token;
  int key_lo, key_hi;
  tile_key_range(a, w, tile_tokens, &key_lo, &key_hi);
  const T* k_base = static_cast<const T*>(a.key_cache);
  const T* v_base = static_cast<const T*>(a.value_cache);
  const int32_t* blocks = a.block_table + w.seq * a.block_table_stride;
  float* S = s.scores.get();

  for (int b = key_lo / bs; key_lo <= key_hi && b <= key_hi / bs; ++b) {
    const int first = b * bs;
    // In-block offsets of the keys this tile reads: [j0, j1], all written slots.
    const int j0 = std::max(first, key_lo) - first;
    const int j1 = std::min(first + bs - 1, key_hi) - first;
    const int64_t phys = blocks[b];
    const T* kt = k_base + phys * a.k_stride_block + w.kv_head * a.k_stride_head;  // [D][bs]
    const T* vt = v_base + phys * a.v_stride_block + w.kv_head * a.v_stride_head;  // [bs][D]
    NextTile<T> next;
    if (b < key_hi / bs) {
      const int64_t phys_next = blocks[b + 1];
      next.kt = k_base + phys_next * a.k_stride_block + w.kv_head * a.k_stride_head;
      next.vt = v_base + phys_next * a.v_stride_block + w.kv_head * a.v_stride_head;
      next.hi = std::min(bs - 1, key_hi - first - bs);
    } else if (after != nullptr) {
      next = first_tile<T>(a, *after, tile_tokens);
    }

    // Scores of 16-key lane groups (32-key groups on the dot path) covering [j0, j1].
    // Lanes outside it may read unwritten slots of this block; they are never used
    // (probabilities below are set per row). The next K tile is prefetched in slices
    // during the first row block's chunks.
    const int c0 = j0 & ~(kLanes - 1);
    for_row_blocks(rows, [&]<int R>(int r0) {
      constexpr int C = lane_groups<R>();
      constexpr int G = dot_groups<R>();
      const int step = dot ? G * bf16_dot::kPairLanes : C * kLanes;
      const float* q = s.q.get() + static_cast<int64_t>(r0) * D;
      float* sr = S + static_cast<int64_t>(r0) * bs;
      const int parts = (j1 - c0) / step + 1;
      int c = c0;
      for (int part = 0; c <= j1; ++part) {
        const PrefetchSpan pf =
            r0 == 0 ? key_span(next, D, bs, std::min(part, parts - 1), parts) : PrefetchSpan{};
#if defined(__AVX512BF16__)  // the bf16_dot micro-kernels exist only there
        if constexpr (kBf16Dot<T>) {
          const bf16* q16 = s.q16.get() + static_cast<int64_t>(r0) * D;
          if (dot && c + step <= bs) {
            bf16_dot::scores<R, G>(q16, D, kt, bs, c, a.scale, sr, bs, pf);
            c += step;
            continue;
          }
          if (dot && c + bf16_dot::kPairLanes <= bs) {
            bf16_dot::scores<R, 1>(q16, D, kt, bs, c, a.scale, sr, bs, pf);
            c += bf16_dot::kPairLanes;
            continue;
          }
        }
#endif
        if (c + C * kLanes <= bs) {
          score_lanes<T, R, C>(q, D, kt, bs, c, sr, bs, pf);
          c += C * kLanes;
        } else {
          score_lanes<T, R, 1>(q, D, kt, bs, c, sr, bs, pf);
          c += kLanes;
        }
      }
    });

    // Online softmax per row; masked keys of [j0, j1] get probability 0.
    for (int r = 0; r < rows; ++r) {
      const int pos = pos_first + r / group;
      const int lo = std::max(j0, (windowed ? pos - a.sliding_window + 1 : 0) - first);
      const int hi = std::min(j1, pos - first);
      float* sr = S + static_cast<int64_t>(r) * bs;
      if (lo > hi) {
        std::fill(sr + j0, sr + j1 + 1, 0.f);
      } else {
        if (capped) {
#pragma omp simd
          for (int j = lo; j <= hi; ++j) sr[j] = a.softcap * tanh_approx(sr[j] / a.softcap);
        }
        const float new_max = std::max(s.row_max[r], range_max(sr, lo, hi));
        const float rescale = exp_approx(s.row_max[r] - new_max);
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int j = lo; j <= hi; ++j) {
          sr[j] = exp_approx(sr[j] - new_max);
          sum += sr[j];
        }
        std::fill(sr + j0, sr + lo, 0.f);
        std::fill(sr + hi + 1, sr + j1 + 1, 0.f);
        s.row_max[r] = new_max;
        s.row_sum[r] = s.row_sum[r] * rescale + sum;
        if (rescale != 1.f) {
          float* o = s.out.get() + static_cast<int64_t>(r) * D;
#pragma omp simd
          for (int c = 0; c < D; ++c) o[c] *= rescale;
        }
      }
#if defined(__AVX512BF16__)
      if constexpr (kBf16Dot<T>)
        if (dot)
          bf16_dot::round_probabilities(sr, j0, j1, s.p16.get() + static_cast<int64_t>(r) * bs);
#endif
    }

    // P.V, prefetching the next V tile during the first row block's chunks likewise.
    for_row_blocks(rows, [&]<int R>(int r0) {
      constexpr int C = lane_groups<R>();
      constexpr int G = dot_groups<R>();
      const int step = dot ? G * bf16_dot::kPairLanes : C * kLanes;
      float* o = s.out.get() + static_cast<int64_t>(r0) * D;
      const int parts = (D + step - 1) / step;
      int c = 0;
      for (int part = 0; c < D; ++part) {
        const PrefetchSpan pf =
            r0 == 0 ? value_span(next, D, std::min(part, parts - 1), parts) : PrefetchSpan{};
#if defined(__AVX512BF16__)
        if constexpr (kBf16Dot<T>) {
          if (dot) {
            const bf16* p16 = s.p16.get() + static_cast<int64_t>(r0) * bs;
            if (c + step <= D) {
              bf16_dot::accumulate<R, G>(p16, bs, vt, D, j0, j1, c, o, pf);
              c += step;
            } else {
              bf16_dot::accumulate<R, 1>(p16, bs, vt, D, j0, j1, c, o, pf);
              c += bf16_dot::kPairLanes;
            }
            continue;
          }
        }
#endif
        const float* p = S + static_cast<int64_t>(r0) * bs;
        if (c + C * kLanes <= D) {
          accumulate_lanes<T, R, C>(p, bs, vt, D, j0, j1, c, o, pf);
          c += C * kLanes;
        } else {
          accumulate_lanes<T, R, 1>(p, bs, vt, D, j0, j1, c, o, pf);
          c += kLanes;
        }
      }
    });
  }

#if defined(__AVX512BF16__)
  if constexpr (kBf16Dot<T>)
    if (dot) bf16_dot::restore_rows(s.out.get(), rows, D);
#endif
  if (w.partial < 0) {
    write_rows<T>(a, w, rows, s.out.get(), s.row_sum.get());
    return;
  }
  const int64_t slot = static_cast<int64_t>(w.partial) * partials.max_rows;
  std::copy(s.out.get(), s.out.get() + static_cast<int64_t>(rows) * D, partials.o + slot * D);
  std::copy(s.row_max.get(), s.row_max.get() + rows, partials.m + slot);
  std::copy(s.row_sum.get(), s.row_sum.get() + rows, partials.l + slot);
}

// Combine the `count` partial results of one tile (log-sum-exp weights) into its output.
template <typename T>
void merge_splits(const PagedAttentionArgs& a, const WorkItem& w, int first_partial, int count,
                  int tile_tokens, const Partials& p, float* o, float* l) {
  const int rows = tile_rows(a, w, tile_tokens);
  const int D = p.D;
  std::fill(o, o + static_cast<int64_t>(rows) * D, 0.f);
  for (int r = 0; r < rows; ++r) {
    float m = -std::numeric_limits<float>::infinity();
    for (int k = 0; k < count; ++k)
      m = std::max(m, p.m[static_cast<int64_t>(first_partial + k) * p.max_rows + r]);
    l[r] = 0.f;
    for (int k = 0; k < count; ++k) {
      const int64_t slot = static_cast<int64_t>(first_partial + k) * p.max_rows + r;
      if (p.l[slot] == 0.f) continue;  // this split saw no key of this row
      const float weight = exp_approx(p.m[slot] - m);
      l[r] += p.l[slot] * weight;
      const float* src = p.o + slot * D;
      float* dst = o + static_cast<int64_t>(r) * D;
#pragma omp simd
      for (int c = 0; c < D; ++c) dst[c] += src[c] * weight;
    }
  }
  write_rows<T>(a, w, rows, o, l);
}

}  // namespace detail

// T: float, bf16 or fp16 (query, caches and output share it). Inputs must already be
// validated (csrc/launch/paged_attention.cpp): indices in range, q_len <= seq_len,
// head_size and block_size multiples of 16, keys stored [head_size][block_size].
template <typename T>
void paged_attention_kernel(const PagedAttentionArgs& a) {
  const int group = a.num_heads / a.num_kv_heads;
  const int tile_tokens = detail::query_tile_tokens(group);
  const int max_rows = tile_tokens * group;

  std::vector<detail::WorkItem> tiles;
  for (int s = 0; s < a.num_seqs; ++s) {
    const int q_len = a.query_start_loc[s + 1] - a.query_start_loc[s];
    for (int t = 0; t < q_len; t += tile_tokens)
      for (int h = 0; h < a.num_kv_heads; ++h) tiles.push_back({s, h, t});
  }

  // Split-KV: with fewer tiles than twice the threads (small decode batches, long
  // contexts), cut each tile's keys into block ranges so that every thread streams, and
  // merge the partial softmaxes with log-sum-exp weights afterwards (the policy:
  // cpu_attention_splits, common/split_heuristics.h).
  const int threads = omp_get_max_threads();
  const int n_tiles = static_cast<int>(tiles.size());
  std::vector<detail::WorkItem> items;
  struct Merge {
    int tile, first_partial, count;
  };
  std::vector<Merge> merges;
  int n_partials = 0;
  for (int i = 0; i < n_tiles; ++i) {
    const detail::WorkItem& w = tiles[i];
    int lo, hi;
    detail::tile_key_range(a, w, tile_tokens, &lo, &hi);
    const int n_blocks = lo <= hi ? hi / a.block_size - lo / a.block_size + 1 : 0;
    const int splits = cpu_attention_splits(n_tiles, threads, n_blocks);
    if (splits == 1) {
      items.push_back(w);
      continue;
    }
    merges.push_back({i, n_partials, splits});
    const int b0 = lo / a.block_size;
    for (int k = 0; k < splits; ++k) {
      detail::WorkItem part = w;
      const int first_block = b0 + static_cast<int>(static_cast<int64_t>(n_blocks) * k / splits);
      const int last_block =
          b0 + static_cast<int>(static_cast<int64_t>(n_blocks) * (k + 1) / splits) - 1;
      part.key_begin = std::max(lo, first_block * a.block_size);
      part.key_end = std::min(hi, last_block * a.block_size + a.block_size - 1);
      part.partial = n_partials++;
      items.push_back(part);
    }
  }
  std::vector<float> partial_o(static_cast<size_t>(n_partials) * max_rows * a.head_size);
  std::vector<float> partial_m(static_cast<size_t>(n_partials) * max_rows);
  std::vector<float> partial_l(static_cast<size_t>(n_partials) * max_rows);
  const detail::Partials partials{partial_o.data(), partial_m.data(), partial_l.data(), max_rows,
                                  a.head_size};
  const int64_t n_items = static_cast<int64_t>(items.size());

  // Round-robin (static, 1): a thread's next item is known, so its first block can be
  // prefetched, and mixed decode/prefill batches still spread evenly.
#pragma omp parallel if (n_items > 1)
  {
    detail::Scratch scratch(max_rows, a.head_size, a.block_size, detail::kBf16Dot<T>);
    const int64_t stride = omp_get_num_threads();
#pragma omp for schedule(static, 1)
    for (int64_t i = 0; i < n_items; ++i)
      detail::run_work_item<T>(a, items[i], i + stride < n_items ? &items[i + stride] : nullptr,
                               tile_tokens, scratch, partials);
#pragma omp for schedule(static, 1)
    for (int64_t i = 0; i < static_cast<int64_t>(merges.size()); ++i)
      detail::merge_splits<T>(a, tiles[merges[i].tile], merges[i].first_partial, merges[i].count,
                              tile_tokens, partials, scratch.out.get(), scratch.row_sum.get());
  }
}

}  // namespace forge::cpu::FORGE_ISA
