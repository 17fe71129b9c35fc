// Attention micro-kernels on AVX512-BF16 dot products (vdpbf16ps), for bf16 caches.
//
// One vdpbf16ps multiplies 16 lane pairs of bf16 and adds both products to 16 fp32
// lanes: twice the multiply-adds of an fp32 FMA, with no bf16 -> fp32 conversion of the
// cache. Products of two bf16 are exact in fp32 and sums stay fp32, so scores are as
// exact as the fp32 path (the query is used unscaled; the scale is applied to the sums).
// P.V takes the probabilities rounded to bf16, as flash attention does on GPUs.
//
// Pairs run along the reduction: (d, d+1) for Q.K^T, (j, j+1) for P.V. Two cache rows
// are interleaved with vpunpck{l,h}wd, which works per 128-bit lane, so the 32 results
// of a pair of accumulators come out as "lo" = {0-3, 8-11, 16-19, 24-27} and
// "hi" = {4-7, 12-15, 20-23, 28-31}; `restore_order` puts them back in order.
#pragma once

#ifndef FORGE_ISA
#error "kernel headers are compiled per ISA: include them from kernel_table.cpp only"
#endif

namespace forge::cpu::FORGE_ISA::bf16_dot {
constexpr int kPairLanes = 32;  // results per (lo, hi) accumulator pair
}  // namespace forge::cpu::FORGE_ISA::bf16_dot

#if defined(__AVX512BF16__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/float_types.h"
#include "cpu/kernels/prefetch.h"

namespace forge::cpu::FORGE_ISA::bf16_dot {

inline __m512i load32(const bf16* p) { return _mm512_loadu_si512(p); }

// Lane pairs (a[i], b[i]) of two rows of 32 bf16, in the lo/hi order above.
inline void interleave(__m512i a, __m512i b, __m512bh* lo, __m512bh* hi) {
  *lo = (__m512bh)_mm512_unpacklo_epi16(a, b);
  *hi = (__m512bh)_mm512_unpackhi_epi16(a, b);
}

// The pair (p[0], p[1]) in every lane.
inline __m512bh broadcast_pair(const bf16* p) {
  int32_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return (__m512bh)_mm512_set1_epi32(bits);
}

// The pair (p[0], 0) in every lane: the last key of an odd range, without reading past it.
inline __m512bh broadcast_single(const bf16* p) {
  return (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(p->bits));
}

// In-order results 0-15 and 16-31 from a lo/hi accumulator pair.
inline void restore_order(__m512 lo, __m512 hi, __m512* first, __m512* second) {
  const __m512i first_idx =
      _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i second_idx =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  *first = _mm512_permutex2var_ps(lo, first_idx, hi);
  *second = _mm512_permutex2var_ps(lo, second_idx, hi);
}

// s[r][c .. c + 32 C) = scale * q[r] . K[:, c .. c + 32 C) for R rows of bf16 queries
// [R][D] (D even); kt is the [D][bs] key tile.
template <int R, int C>
[[gnu::noinline]] void scores(const bf16* q, int D, const bf16* kt, int bs, int c, float scale,
                              float* s, int s_stride, const PrefetchSpan& pf) {
  const SpreadPrefetch prefetch(pf, D / 2);
  __m512 acc[R][C][2];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) acc[r][g][0] = acc[r][g][1] = _mm512_setzero_ps();
  for (int d = 0; d < D; d += 2) {
    prefetch.at(d / 2);
    __m512bh lo[C], hi[C];
    for (int g = 0; g < C; ++g) {
      const bf16* k = kt + static_cast<int64_t>(d) * bs + c + g * kPairLanes;
      interleave(load32(k), load32(k + bs), &lo[g], &hi[g]);
    }
    for (int r = 0; r < R; ++r) {
      const __m512bh qd = broadcast_pair(q + r * D + d);
      for (int g = 0; g < C; ++g) {
        acc[r][g][0] = _mm512_dpbf16_ps(acc[r][g][0], lo[g], qd);
        acc[r][g][1] = _mm512_dpbf16_ps(acc[r][g][1], hi[g], qd);
      }
    }
  }
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) {
      __m512 first, second;
      restore_order(acc[r][g][0], acc[r][g][1], &first, &second);
      float* dst = s + r * s_stride + c + g * kPairLanes;
      _mm512_storeu_ps(dst, _mm512_mul_ps(first, vscale));
      _mm512_storeu_ps(dst + 16, _mm512_mul_ps(second, vscale));
    }
}

// o[r][c .. c + 32 C) += sum_j p[r][j] V[j][c .. c + 32 C) over j in [j0, j1], for bf16
// probabilities p [R][p_stride] and the [bs][D] value tile v. o keeps each 32 columns
// in lo/hi order (see restore_order) until the caller restores it.
template <int R, int C>
[[gnu::noinline]] void accumulate(const bf16* p, int p_stride, const bf16* v, int D, int j0, int j1,
                                  int c, float* o, const PrefetchSpan& pf) {
  const SpreadPrefetch prefetch(pf, (j1 - j0) / 2 + 1);
  __m512 acc[R][C][2];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) {
      acc[r][g][0] = _mm512_loadu_ps(o + r * D + c + g * kPairLanes);
      acc[r][g][1] = _mm512_loadu_ps(o + r * D + c + g * kPairLanes + 16);
    }
  auto step = [&](int j, bool pair) {
    __m512bh lo[C], hi[C];
    for (int g = 0; g < C; ++g) {
      const bf16* x = v + static_cast<int64_t>(j) * D + c + g * kPairLanes;
      interleave(load32(x), pair ? load32(x + D) : _mm512_setzero_si512(), &lo[g], &hi[g]);
    }
    for (int r = 0; r < R; ++r) {
      const bf16* pr = p + r * p_stride + j;
      const __m512bh pj = pair ? broadcast_pair(pr) : broadcast_single(pr);
      for (int g = 0; g < C; ++g) {
        acc[r][g][0] = _mm512_dpbf16_ps(acc[r][g][0], lo[g], pj);
        acc[r][g][1] = _mm512_dpbf16_ps(acc[r][g][1], hi[g], pj);
      }
    }
  };
  int j = j0;
  for (; j + 1 <= j1; j += 2) {
    prefetch.at((j - j0) / 2);
    step(j, true);
  }
  if (j == j1) {
    prefetch.at((j - j0) / 2);
    step(j, false);
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < C; ++g) {
      _mm512_storeu_ps(o + r * D + c + g * kPairLanes, acc[r][g][0]);
      _mm512_storeu_ps(o + r * D + c + g * kPairLanes + 16, acc[r][g][1]);
    }
}

// Put rows of o [rows][D] (D a multiple of 32) back in column order.
inline void restore_rows(float* o, int rows, int D) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < D; c += kPairLanes) {
      float* x = o + static_cast<int64_t>(r) * D + c;
      __m512 first, second;
      restore_order(_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16), &first, &second);
      _mm512_storeu_ps(x, first);
      _mm512_storeu_ps(x + 16, second);
    }
}

// p16[j] = bf16(p[j]) for j in [j0, j1] (round to nearest even).
inline void round_probabilities(const float* p, int j0, int j1, bf16* p16) {
  int j = j0;
  for (; j + 16 <= j1 + 1; j += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(p + j));
    std::memcpy(p16 + j, &h, sizeof h);
  }
  if (j <= j1) {
    const __mmask16 m = static_cast<__mmask16>((1u << (j1 + 1 - j)) - 1);
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, p + j));
    _mm256_mask_storeu_epi16(p16 + j, m, (__m256i)h);
  }
}

}  // namespace forge::cpu::FORGE_ISA::bf16_dot

#endif  // __AVX512BF16__
