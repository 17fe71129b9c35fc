// Weight-only quantised matmul: out[m, n] = sum_k x[m, k] W[n, k] (+ bias[n]), with
// W[n, k] = s[n, g] * q[n, k] + mins[n, g] read from the packed layout of
// python/vllm_forge/quant/format.py and dequantised in registers.
//
// Two paths, by the rows of x (the launcher, cpu/quant_gemm.cpp, sends large m to
// panels of W dequantised by quant_dequantize_kernel and multiplied by torch's GEMM):
// - direct (m <= kDirectMaxRows, decode): each 32-code block of W is dequantised to fp32
//   in registers (W = s q + m, one FMA per 16 lanes) and used at once by every row: the
//   weight bytes are read once and nothing else is written, so it runs at the memory
//   bandwidth of the weight. For bf16 x and int4 codes (groups >= 32) with AVX512-BF16,
//   bf16_direct below instead multiplies x by the codes with vdpbf16ps (exact, half the
//   instructions).
// - strip (small batches): each thread dequantises kNr rows of W into a strip in L1/L2
//   once, then runs every row of x through it with a kMr x kNr register-tiled
//   micro-kernel, so the unpacking is paid once per weight, not once per row tile.
//   With AVX512-BF16 and bf16 x the strip is bf16 and the micro-kernel vdpbf16ps (32
//   products per instruction, fp32 sums): W rounded once to bf16, as vLLM's unquantised
//   bf16 model stores it. Otherwise the strip is fp32 and the math FMAs.
// The fp32 math of both is the reference's up to the order of the sums: W = s q + m is
// exact in fp32 for every GGUF and GPTQ/AWQ type. x rows are first copied, padded with
// zeros to a multiple of 32, so the block loops have no tails.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {
namespace quant {

constexpr int kBlock = 32;         // k per int4 block of 16 bytes, and per inner-loop step
constexpr int kMr = 4;             // rows of x per register tile
constexpr int kNr = 4;             // output columns per register tile: kMr * kNr accumulators
constexpr int kDirectMaxRows = 4;  // rows of x up to which W is dequantised in registers

// Bytes ahead of the codes being read to prefetch. A thread walks its weight rows in
// order, a few hundred bytes each, which the hardware prefetchers alone do not keep
// ahead of: measured on SmolLM2's decode GEMMs (weights from DRAM, 2 threads), 4 KB
// ahead nearly doubles the direct path's throughput (8.7 -> 4.3-5.1 ms per step); 2 KB
// and 8-16 KB were slower, and prefetching the scale rows too did not help (the
// hardware keeps up with that thinner stream). Past the end of the weight a prefetch is
// harmless (it never faults).
constexpr int64_t kPrefetchBytes = 4096;

inline void prefetch(const void* p, int64_t bytes_ahead) {
  // As an integer: a pointer past the end of the weight would be undefined behaviour.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + bytes_ahead), 0,
                     3);
}

inline void prefetch_ahead(const uint8_t* p) { prefetch(p, kPrefetchBytes); }

// fp32 scales (and mins) are read in place, a stream beside the codes' that needs
// prefetching too, the same distance ahead in groups: 8B-class gate_up/down with fp32
// scales and mins (GGUF Q4_K) at M = 1, from DRAM: 10-12 -> 23-24 GB/s. (fp16 ones are
// converted per row into a buffer first: nothing to prefetch there.)
inline int64_t scale_prefetch_bytes(const QuantGemmArgs& a) {
  return kPrefetchBytes / (a.group_size * a.bits / 8) * static_cast<int64_t>(sizeof(float));
}

// scales / mins: a WeightRow's (in place for S = float, a converted buffer otherwise).
template <typename S>
inline void prefetch_group_params(const float* scales, const float* mins, int64_t g,
                                  int64_t bytes_ahead) {
  if constexpr (std::is_same_v<S, float>) {
    prefetch(scales + g, bytes_ahead);
    if (mins) prefetch(mins + g, bytes_ahead);
  }
}

typedef int32_t vi32 __attribute__((vector_size(kLanes * sizeof(int32_t))));

// 16 bytes widened to 16 int32 lanes, zero- (SIGNED = false) or sign-extended. One
// vpmovzxbd / vpmovsxbd per 16 lanes (GCC turns the generic conversion into scalar
// byte extractions).
template <bool SIGNED>
inline vi32 widen16(const uint8_t* p) {
  vi32 w;
#if defined(__AVX512F__)
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m512i z = SIGNED ? _mm512_maskz_cvtepi8_epi32(0xFFFF, b)
                           : _mm512_maskz_cvtepu8_epi32(0xFFFF, b);  // maskz: GCC bug 105593
  std::memcpy(&w, &z, sizeof w);
#elif defined(__AVX2__)
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i lo = SIGNED ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
  const __m128i b8 = _mm_srli_si128(b, 8);
  const __m256i hi = SIGNED ? _mm256_cvtepi8_epi32(b8) : _mm256_cvtepu8_epi32(b8);
  std::memcpy(&w, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char*>(&w) + sizeof lo, &hi, sizeof hi);
#else
  for (int i = 0; i < kLanes; ++i)
    w[i] = SIGNED ? static_cast<int32_t>(static_cast<int8_t>(p[i])) : static_cast<int32_t>(p[i]);
#endif
  return w;
}

// The 32 codes of one block as two 16-lane vectors: k = 32 b + 0..15 and 32 b + 16..31.
// bits 4: 16 bytes, low nibbles then high nibbles; bits 8: 32 int8.
template <int BITS>
inline void load_codes(const uint8_t* block, vfloat& lo, vfloat& hi) {
  if constexpr (BITS == 4) {
    const vi32 w = widen16<false>(block);
    lo = __builtin_convertvector(w & 15, vfloat);
    hi = __builtin_convertvector(w >> 4, vfloat);
  } else {
    lo = __builtin_convertvector(widen16<true>(block), vfloat);
    hi = __builtin_convertvector(widen16<true>(block + 16), vfloat);
  }
}

template <int BITS>
constexpr int block_bytes() {
  return BITS == 4 ? 16 : 32;
}

// One weight row's view: its codes, scales and mins, and where its last block is partial.
// A row of scales (or mins) as fp32: fp16 ones converted once per row with vector loads
// into buf (groups floats, per thread), so the block loops broadcast fp32 scalars instead
// of converting one half at a time. fp32 rows are used in place.
template <typename S>
inline const float* scales_as_float(const S* row, int64_t groups, float* buf) {
  if constexpr (std::is_same_v<S, float>) {
    return row;
  } else {
    int64_t g = 0;
    for (; g + kLanes <= groups; g += kLanes) store16(buf + g, load16(row + g));
    for (; g < groups; ++g) buf[g] = to_float(row[g]);
    return buf;
  }
}

// Floats of conversion buffer one WeightRow needs (scales and mins).
inline int64_t row_buffer_floats(const QuantGemmArgs& a) {
  return 2 * ((a.k + a.group_size - 1) / a.group_size);
}

// One weight row's view: its codes, scales and mins, and where its last block is partial.
// A row of fp16 scales (or mins) as fp32, in a per-thread buffer for each of the kNr
// rows of a tile (slot): converted once per row with vector loads, so the block loops
// load fp32 scalars (a broadcast from memory) instead of converting one half at a time.
template <typename S>
inline const float* scales_as_float(const S* row, int64_t groups, int slot, int which) {
  if constexpr (std::is_same_v<S, float>) {
    return row;
  } else {
    thread_local std::vector<float> buffers[2 * kNr];
    std::vector<float>& buf = buffers[2 * slot + which];
    const int64_t padded = (groups + kLanes - 1) / kLanes * kLanes;
    if (static_cast<int64_t>(buf.size()) < padded) buf.resize(padded);
    int64_t g = 0;
    for (; g + kLanes <= groups; g += kLanes) store16(buf.data() + g, load16(row + g));
    for (; g < groups; ++g) buf[g] = to_float(row[g]);
    return buf.data();
  }
}

// One weight row's view: its codes, scales and mins, and where its last block is partial.
template <typename S, int BITS>
struct WeightRow {
  const uint8_t* codes;
  const float* scales;
  const float* mins;    // nullptr: no mins
  int64_t full_blocks;  // blocks whose bytes all lie inside the row
  int64_t blocks;       // ceil(k / 32)
  int64_t last_group;
  int group_shift;  // log2(group_size): group sizes are powers of two
  // bits 8 with k % 32 != 0: the last block's codes, zero-padded (codes past k are
  // multiplied by x's zero padding, never read from past the row).
  alignas(16) uint8_t tail[32] = {};

  // buf: row_buffer_floats(a) floats of this thread's (for fp16 scales).
  void init(const QuantGemmArgs& a, int64_t n, float* buf) {
    const int64_t groups = (a.k + a.group_size - 1) / a.group_size;
    codes = a.qweight + n * a.q_stride_row;
    scales = scales_as_float(static_cast<const S*>(a.scales) + n * a.s_stride_row, groups, buf);
    mins = a.mins ? scales_as_float(static_cast<const S*>(a.mins) + n * a.s_stride_row, groups,
                                    buf + groups)
                  : nullptr;
    blocks = (a.k + kBlock - 1) / kBlock;
    last_group = groups - 1;
    group_shift = __builtin_ctz(static_cast<unsigned>(a.group_size));
    full_blocks = BITS == 4 ? blocks : a.k / kBlock;
    if (full_blocks < blocks) {
      std::memset(tail, 0, sizeof tail);
      std::memcpy(tail, codes + full_blocks * kBlock, a.k - full_blocks * kBlock);
    }
  }

  const uint8_t* block(int64_t b) const {
    return b < full_blocks ? codes + b * block_bytes<BITS>() : tail;
  }
  // The group of the 16 lanes starting at k0 (k0 past the row only in the padding, where
  // x is zero: the last group's scale keeps the product finite).
  int64_t group_of(int64_t k0) const { return std::min<int64_t>(k0 >> group_shift, last_group); }
};

// The horizontal sums of 16 vectors at once: four stages of shuffle-and-add (each adds
// lanes w apart and packs two vectors' partial sums into one vector), 30 shuffles and 15
// adds instead of 16 separate reductions. Vector i's sum lands in lane bitrev4(i)
// (checked by running the stages on labels).
inline vfloat sum_pairs(vfloat a, vfloat b, int w) {
  switch (w) {
    case 8:
      return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
             __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                     31);
    case 4:
      return __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26,
                                     27) +
             __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30,
                                     31);
    case 2:
      return __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28,
                                     29) +
             __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30,
                                     31);
    default:
      return __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14,
                                     30) +
             __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15,
                                     31);
  }
}

constexpr int bitrev4(int i) {
  return ((i & 1) << 3) | ((i & 2) << 1) | ((i & 4) >> 1) | ((i & 8) >> 3);
}

// result[i][j] = the lane sum of acc[i][j]; one batched reduction for a 4 x 4 tile.
template <int MR, int NR>
inline void reduce_tile(const vfloat (&acc)[MR][NR], float (*result)[NR]) {
  if constexpr (MR * NR == 16) {
    vfloat v[16];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) v[i * NR + j] = acc[i][j];
    for (int w = 8, n = 16; w >= 1; w /= 2, n /= 2)
      for (int p = 0; p < n / 2; ++p) v[p] = sum_pairs(v[2 * p], v[2 * p + 1], w);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) result[i][j] = v[0][bitrev4(i * NR + j)];
  } else {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) result[i][j] = reduce_add(acc[i][j]);
  }
}

// 32 consecutive values: lo then hi. bf16 with AVX512-BF16: one vcvtne2ps2bf16.
inline void store32(float* p, vfloat lo, vfloat hi) {
  store16(p, lo);
  store16(p + kLanes, hi);
}

inline void store32(bf16* p, vfloat lo, vfloat hi) {
#if defined(__AVX512BF16__)
  __m512 l, h;
  std::memcpy(&l, &lo, sizeof l);
  std::memcpy(&h, &hi, sizeof h);
  _mm512_storeu_si512(reinterpret_cast<void*>(p), (__m512i)_mm512_cvtne2ps_pbh(h, l));
#else
  store16(p, lo);
  store16(p + kLanes, hi);
#endif
}

// Rows [n0, n0 + rows) of W dequantised into a strip of fp32 (or bf16) rows of kp
// elements: W = s q + m in fp32, rounded once for a bf16 strip. Past k the strip holds
// the last group's s * 0 + m (finite), which x's zero padding cancels.
template <typename D, typename S, int BITS>
inline void dequantize_strip(const QuantGemmArgs& a, int64_t n0, int rows, int64_t kp, D* strip,
                             float* row_buf) {
  for (int j = 0; j < rows; ++j) {
    WeightRow<S, BITS> w;
    w.init(a, n0 + j, row_buf);
    D* out = strip + j * kp;
    for (int64_t b = 0; b < w.blocks; ++b) {
      prefetch_ahead(w.codes + b * block_bytes<BITS>());
      vfloat lo, hi;
      load_codes<BITS>(w.block(b), lo, hi);
      const int64_t g0 = w.group_of(b * kBlock), g1 = w.group_of(b * kBlock + kLanes);
      lo *= w.scales[g0];
      hi *= w.scales[g1];
      if (w.mins) {
        lo += w.mins[g0];
        hi += w.mins[g1];
      }
      store32(out + b * kBlock, lo, hi);
    }
  }
}

// acc[i][j] = sum_k x[i][k] w[j][k] over kp (a multiple of 32) for MR rows of x and NR
// strip rows. fp32: FMAs. bf16 x with AVX512-BF16: vdpbf16ps, 32 products per
// instruction summed in fp32.
template <typename X, int MR, int NR>
inline void micro_kernel(const X* x, int64_t x_stride, const X* w, int64_t kp,
                         float result[MR][NR]) {
  vfloat acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vfloat{};
#if defined(__AVX512BF16__)
  if constexpr (std::is_same_v<X, bf16>) {
    for (int64_t k = 0; k < kp; k += kBlock) {
      __m512bh wv[NR];
      for (int j = 0; j < NR; ++j)
        wv[j] = (__m512bh)_mm512_loadu_si512(reinterpret_cast<const void*>(w + j * kp + k));
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv =
            (__m512bh)_mm512_loadu_si512(reinterpret_cast<const void*>(x + i * x_stride + k));
        for (int j = 0; j < NR; ++j) {
          __m512 c;
          std::memcpy(&c, &acc[i][j], sizeof c);
          c = _mm512_dpbf16_ps(c, xv, wv[j]);
          std::memcpy(&acc[i][j], &c, sizeof c);
        }
      }
    }
  } else
#endif
  {
    static_assert(std::is_same_v<X, float> || std::is_same_v<X, bf16>);
    if constexpr (std::is_same_v<X, float>) {
      for (int64_t k = 0; k < kp; k += kLanes) {
        vfloat wv[NR];
        for (int j = 0; j < NR; ++j) wv[j] = load16(w + j * kp + k);
        for (int i = 0; i < MR; ++i) {
          const vfloat xv = load16(x + i * x_stride + k);
          for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
        }
      }
    }
  }
  reduce_tile<MR, NR>(acc, result);
}

// The direct path for a few rows of x: acc[i][j] = sum_k x[i][k] W[n0 + j][k] with
// each block of W dequantised to fp32 in registers (W = s q + m, one FMA) and used at
// once by MR rows: no strip written and read back, which is what decode (M = 1) is
// bound by. x: fp32 rows of kp elements.
template <typename S, int BITS, int MR, int NR>
inline void direct_tile(const QuantGemmArgs& a, const float* x, int64_t kp, int64_t n0,
                        float* row_bufs, float result[MR][NR]) {
  vfloat acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vfloat{};
  WeightRow<S, BITS> w[NR];
  for (int j = 0; j < NR; ++j) w[j].init(a, n0 + j, row_bufs + j * row_buffer_floats(a));
  const int64_t scale_ahead = scale_prefetch_bytes(a);
  for (int64_t b = 0; b < w[0].blocks; ++b) {
    const int64_t g0 = w[0].group_of(b * kBlock), g1 = w[0].group_of(b * kBlock + kLanes);
    for (int j = 0; j < NR; ++j) {
      prefetch_ahead(w[j].codes + b * block_bytes<BITS>());
      prefetch_group_params<S>(w[j].scales, w[j].mins, g0, scale_ahead);
      vfloat lo, hi;
      load_codes<BITS>(w[j].block(b), lo, hi);
      if (w[j].mins) {
        lo = lo * w[j].scales[g0] + w[j].mins[g0];
        hi = hi * w[j].scales[g1] + w[j].mins[g1];
      } else {
        lo *= w[j].scales[g0];
        hi *= w[j].scales[g1];
      }
      for (int i = 0; i < MR; ++i) {
        acc[i][j] += load16(x + i * kp + b * kBlock) * lo;  // two statements: two FMAs
        acc[i][j] += load16(x + i * kp + b * kBlock + kLanes) * hi;
      }
    }
  }
  reduce_tile<MR, NR>(acc, result);
}

#if defined(__AVX512BF16__)
// The direct path for bf16 x and int4 codes with groups of 32 or more, exact: vdpbf16ps
// multiplies x by the codes themselves, which bf16 holds exactly, so no W = s q + m is
// formed. A code q becomes the bf16 bits 0x4300 | q = 128 + q with one logic op (no
// integer-to-float conversion), and the 128 comes back out through the group sums of x:
//   sum_k W x = sum_g s_g sum_{k in g} (128 + q_k) x_k + sum_g (m_g - 128 s_g) X_g,
// X_g = sum_{k in g} x_k, computed once per call for all N. Per 64 codes and column:
// one widening load, three logic ops and, per row of x, two vdpbf16ps and one FMA
// (half the instructions of converting the codes to fp32). Products are exact in fp32;
// the sums are fp32, as in the fp32 path.
namespace bf16_direct {

constexpr int kPair = 2 * kBlock;  // codes per step: two 16-byte blocks

// x rows in the order the step reads them, per 64 k: k 0..15 and 32..47 (low nibbles of
// the two blocks), then 16..31 and 48..63 (high nibbles); zero-padded to whole pairs.
// Then each row's group sums X_g in fp32. One buffer, per thread, reused across calls.
struct PreparedX {
  const bf16* x;      // [m][kp64]
  const float* sums;  // [m][groups]
  int64_t kp64;
  int64_t groups;
};

inline PreparedX prepare_x(const QuantGemmArgs& a) {
  const int64_t kp64 = (a.k + kPair - 1) / kPair * kPair;
  const int64_t groups = (a.k + a.group_size - 1) / a.group_size;
  thread_local std::vector<bf16> xs;
  thread_local std::vector<float> sums;
  xs.assign(a.m * kp64, bf16{});
  sums.assign(a.m * groups, 0.f);
  const bf16* x = static_cast<const bf16*>(a.x);
  constexpr int kOrder[4] = {0, 2, 1, 3};  // 16-wide chunk c of a pair goes to slot kOrder[c]
  for (int64_t i = 0; i < a.m; ++i) {
    const bf16* src = x + i * a.x_stride_row;
    bf16* dst = xs.data() + i * kp64;
    float* s = sums.data() + i * groups;
    for (int64_t k0 = 0; k0 < a.k; k0 += kLanes) {
      const int64_t len = std::min<int64_t>(kLanes, a.k - k0);
      const int64_t pair = k0 / kPair, chunk = (k0 % kPair) / kLanes;
      std::memcpy(dst + pair * kPair + kOrder[chunk] * kLanes, src + k0, len * sizeof(bf16));
    }
    for (int64_t k = 0; k < a.k; ++k) s[k / a.group_size] += to_float(src[k]);
  }
  return {xs.data(), sums.data(), kp64, groups};
}

// acc[i][j] for MR rows of x and NR columns from n0, then the group-sum correction.
template <typename S, int MR, int NR>
inline void tile(const QuantGemmArgs& a, const PreparedX& px, const bf16* x, const float* xsums,
                 int64_t n0, float* row_bufs, float result[MR][NR]) {
  const int64_t blocks = (a.k + kBlock - 1) / kBlock, full_pairs = blocks / 2;
  // Lanes 0-7 of a step's sums belong to its first block, 8-15 to its second: one group
  // (groups of 64 or more, from aligned pairs) or two consecutive ones (groups of 32).
  const bool two_groups = a.group_size == kBlock;
  const int pair_shift = __builtin_ctz(static_cast<unsigned>(a.group_size)) - 6;  // >= 0 unless 32
  const __m512i scale_index = two_groups
                                  ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                                  : _mm512_setzero_si512();
  const __m512i nibble = _mm512_set1_epi16(0x000F), bias = _mm512_set1_epi16(0x4300);
  __m512 acc[MR][NR];
  const float* scales[NR];
  const float* mins[NR];
  const uint8_t* codes[NR];
  for (int j = 0; j < NR; ++j) {
    WeightRow<S, 4> w;
    w.init(a, n0 + j, row_bufs + j * row_buffer_floats(a));
    codes[j] = w.codes;
    scales[j] = w.scales;
    mins[j] = w.mins;
    for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_setzero_ps();
  }
  const int64_t scale_ahead = scale_prefetch_bytes(a);
  auto step = [&](int64_t p, __mmask32 byte_mask) {
    const int64_t g = two_groups ? 2 * p : p >> pair_shift;
    const __mmask8 scale_mask = two_groups && (byte_mask == 0xFFFFFFFFu) ? 0x3 : 0x1;
    __m512bh xl[MR], xh[MR];
    for (int i = 0; i < MR; ++i) {
      xl[i] = (__m512bh)_mm512_loadu_si512(x + i * px.kp64 + p * kPair);
      xh[i] = (__m512bh)_mm512_loadu_si512(x + i * px.kp64 + p * kPair + kPair / 2);
    }
    for (int j = 0; j < NR; ++j) {
      prefetch_ahead(codes[j] + p * kPair / 2);
      prefetch_group_params<S>(scales[j], mins[j], g, scale_ahead);
      const __m512i w =
          _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(byte_mask, codes[j] + p * kPair / 2));
      const __m512bh lo =
          (__m512bh)_mm512_ternarylogic_epi32(w, nibble, bias, 0xEA);  // (w & 15) | 0x4300
      const __m512bh hi = (__m512bh)_mm512_or_si512(_mm512_srli_epi16(w, 4), bias);
      // maskz forms: GCC 12 warns on the undefined upper lanes of the plain ones.
      const __m512 s = _mm512_maskz_permutexvar_ps(
          0xFFFF, scale_index,
          _mm512_zextps128_ps512(_mm_maskz_loadu_ps(scale_mask, scales[j] + g)));
      for (int i = 0; i < MR; ++i) {
        const __m512 d =
            _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), lo, xl[i]), hi, xh[i]);
        acc[i][j] = _mm512_fmadd_ps(d, s, acc[i][j]);
      }
    }
  };
  for (int64_t p = 0; p < full_pairs; ++p) step(p, 0xFFFFFFFFu);
  if (blocks % 2) step(full_pairs, 0x0000FFFFu);  // the last block alone: no read past the row
  vfloat sums[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) std::memcpy(&sums[i][j], &acc[i][j], sizeof(vfloat));
  reduce_tile<MR, NR>(sums, result);
  // + sum_g (m_g - 128 s_g) X_g, 16 groups at a time.
  for (int j = 0; j < NR; ++j) {
    __m512 c[MR];
    for (int i = 0; i < MR; ++i) c[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < px.groups; g += kLanes) {
      const __mmask16 mask =
          px.groups - g >= kLanes ? 0xFFFF : (__mmask16)((1u << (px.groups - g)) - 1);
      const __m512 s = _mm512_maskz_loadu_ps(mask, scales[j] + g);
      const __m512 m = mins[j] ? _mm512_maskz_loadu_ps(mask, mins[j] + g) : _mm512_setzero_ps();
      const __m512 coef = _mm512_fnmadd_ps(s, _mm512_set1_ps(128.f), m);
      for (int i = 0; i < MR; ++i)
        c[i] = _mm512_fmadd_ps(coef, _mm512_maskz_loadu_ps(mask, xsums + i * px.groups + g), c[i]);
    }
    for (int i = 0; i < MR; ++i) {
      vfloat v;
      std::memcpy(&v, &c[i], sizeof v);
      result[i][j] += reduce_add(v);
    }
  }
}

}  // namespace bf16_direct
#endif

// Whether bf16 x multiplies a bf16 strip (vdpbf16ps); otherwise x and W are fp32.
template <typename T>
constexpr bool kBf16Dot =
#if defined(__AVX512BF16__)
    std::is_same_v<T, bf16>;
#else
    false;
#endif

// out[m0 .. m0 + MR, n0 .. n0 + NR] = the tile's sums + bias, for every row tile of x.
// tile(mr_tag, m0, r) fills r[MR][NR].
template <typename T, int NR, typename Tile>
inline void store_rows(const QuantGemmArgs& a, int64_t n0, Tile tile) {
  T* out = static_cast<T*>(a.out);
  const T* bias = static_cast<const T*>(a.bias);
  auto run = [&](auto mr_tag, int64_t m0) {
    constexpr int MR = decltype(mr_tag)::value;
    float r[MR][NR];
    tile(mr_tag, m0, r);
    for (int j = 0; j < NR; ++j) {
      const float b = bias ? to_float(bias[n0 + j]) : 0.f;
      for (int i = 0; i < MR; ++i)
        out[(m0 + i) * a.out_stride_row + n0 + j] = from_float<T>(r[i][j] + b);
    }
  };
  int64_t m0 = 0;
  for (; m0 + kMr <= a.m; m0 += kMr) run(std::integral_constant<int, kMr>{}, m0);
  switch (a.m - m0) {
    case 3:
      run(std::integral_constant<int, 3>{}, m0);
      break;
    case 2:
      run(std::integral_constant<int, 2>{}, m0);
      break;
    case 1:
      run(std::integral_constant<int, 1>{}, m0);
      break;
    default:
      break;
  }
}

// x rows converted to X and padded with zeros to kp, in a buffer reused across calls.
template <typename X, typename T>
inline const X* padded_rows(const QuantGemmArgs& a, int64_t kp) {
  thread_local std::vector<X> scratch;
  scratch.resize(a.m * kp);
  X* xs = scratch.data();
  const T* x = static_cast<const T*>(a.x);
  for (int64_t i = 0; i < a.m; ++i) {
    const T* src = x + i * a.x_stride_row;
    X* dst = xs + i * kp;
    if constexpr (std::is_same_v<X, T>) {
      std::memcpy(dst, src, a.k * sizeof(T));
    } else {
      for (int64_t k = 0; k < a.k; ++k) dst[k] = to_float(src[k]);
    }
    std::memset(static_cast<void*>(dst + a.k), 0, (kp - a.k) * sizeof(X));
  }
  return xs;
}

// Output columns in tiles of kNr (then single columns), split over the OpenMP threads;
// column_tile(nr_tag, n0, strip, row_bufs) computes one. Per thread: strip, kNr * kp X
// (if strip_needed), and row_bufs, kNr WeightRow conversion buffers.
template <typename X, typename ColumnTile>
inline void for_column_tiles(const QuantGemmArgs& a, int64_t kp, bool strip_needed,
                             ColumnTile column_tile) {
  const int64_t full = a.n / kNr, tiles = full + (a.n - full * kNr);
#pragma omp parallel if (a.m * a.n * a.k > (1 << 18))
  {
    // Thread-local, reused across calls; looked up once per call (a TLS access is a
    // function call in a shared library).
    thread_local std::vector<X> strip;
    thread_local std::vector<float> row_bufs;
    if (strip_needed && strip.size() < static_cast<size_t>(kNr * kp)) strip.resize(kNr * kp);
    const size_t bufs = static_cast<size_t>(kNr * row_buffer_floats(a));
    if (row_bufs.size() < bufs) row_bufs.resize(bufs);
    X* s = strip.data();
    float* r = row_bufs.data();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      if (t < full) {
        column_tile(std::integral_constant<int, kNr>{}, t * kNr, s, r);
      } else {
        column_tile(std::integral_constant<int, 1>{}, full * kNr + (t - full), s, r);
      }
    }
  }
}

template <typename T, typename S, int BITS>
void gemm(const QuantGemmArgs& a) {
  const int64_t kp = (a.k + kBlock - 1) / kBlock * kBlock;
#if defined(__AVX512BF16__)
  if constexpr (std::is_same_v<T, bf16> && BITS == 4) {
    if (a.m <= kDirectMaxRows && a.group_size >= kBlock) {
      const bf16_direct::PreparedX px = bf16_direct::prepare_x(a);
      for_column_tiles<float>(a, kp, false, [&](auto nr_tag, int64_t n0, float*, float* bufs) {
        constexpr int NR = decltype(nr_tag)::value;
        store_rows<T, NR>(a, n0, [&](auto mr_tag, int64_t m0, float (*r)[NR]) {
          bf16_direct::tile<S, decltype(mr_tag)::value, NR>(a, px, px.x + m0 * px.kp64,
                                                            px.sums + m0 * px.groups, n0, bufs, r);
        });
      });
      return;
    }
  }
#endif
  if (a.m <= kDirectMaxRows) {
    const float* xs = padded_rows<float, T>(a, kp);
    for_column_tiles<float>(a, kp, false, [&](auto nr_tag, int64_t n0, float*, float* bufs) {
      constexpr int NR = decltype(nr_tag)::value;
      store_rows<T, NR>(a, n0, [&](auto mr_tag, int64_t m0, float (*r)[NR]) {
        direct_tile<S, BITS, decltype(mr_tag)::value, NR>(a, xs + m0 * kp, kp, n0, bufs, r);
      });
    });
    return;
  }
  using X = std::conditional_t<kBf16Dot<T>, bf16, float>;
  const X* xs = padded_rows<X, T>(a, kp);
  for_column_tiles<X>(a, kp, true, [&](auto nr_tag, int64_t n0, X* strip, float* bufs) {
    constexpr int NR = decltype(nr_tag)::value;
    dequantize_strip<X, S, BITS>(a, n0, NR, kp, strip, bufs);
    store_rows<T, NR>(a, n0, [&](auto mr_tag, int64_t m0, float (*r)[NR]) {
      micro_kernel<X, decltype(mr_tag)::value, NR>(xs + m0 * kp, kp, strip, kp, r);
    });
  });
}

template <typename D, typename S, int BITS>
void dequantize(const QuantDequantArgs& d) {
  const QuantGemmArgs& a = *d.gemm;
#pragma omp parallel
  {
    std::vector<float> row_buf(row_buffer_floats(a));
#pragma omp for schedule(static)
    for (int64_t n = d.n_begin; n < d.n_end; ++n) {
      WeightRow<S, BITS> w;
      w.init(a, n, row_buf.data());
      D* out = static_cast<D*>(d.dst) + (n - d.n_begin) * d.dst_stride_row;
      for (int64_t b = 0; b < w.blocks; ++b) {
        prefetch_ahead(w.codes + b * block_bytes<BITS>());
        vfloat v[2];
        load_codes<BITS>(w.block(b), v[0], v[1]);
        for (int h = 0; h < 2; ++h) {
          const int64_t k0 = b * kBlock + h * kLanes;
          if (k0 >= a.k) break;
          const int64_t g = w.group_of(k0);
          vfloat e = v[h] * w.scales[g];
          if (w.mins) e += w.mins[g];
          if (k0 + kLanes <= a.k) {
            store16(out + k0, e);
          } else {
            for (int64_t k = k0; k < a.k; ++k) out[k] = from_float<D>(e[k - k0]);
          }
        }
      }
    }
  }
}

}  // namespace quant

// out = x @ W^T + bias for x of type T (QuantGemmArgs: bits, scale type at run time).
template <typename T>
void quant_gemm_kernel(const QuantGemmArgs& a) {
  if (a.bits == 4) {
    a.scales_fp16 ? quant::gemm<T, fp16, 4>(a) : quant::gemm<T, float, 4>(a);
  } else {
    a.scales_fp16 ? quant::gemm<T, fp16, 8>(a) : quant::gemm<T, float, 8>(a);
  }
}

// Rows of W as T.
template <typename T>
void quant_dequantize_kernel(const QuantDequantArgs& d) {
  const QuantGemmArgs& a = *d.gemm;
  if (a.bits == 4) {
    a.scales_fp16 ? quant::dequantize<T, fp16, 4>(d) : quant::dequantize<T, float, 4>(d);
  } else {
    a.scales_fp16 ? quant::dequantize<T, fp16, 8>(d) : quant::dequantize<T, float, 8>(d);
  }
}

}  // namespace forge::cpu::FORGE_ISA
