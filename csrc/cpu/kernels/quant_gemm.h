// Weight-only quantised matmul: out[m, n] = sum_k x[m, k] W[n, k] (+ bias[n]), with
// W[n, k] = s[n, g] * q[n, k] + mins[n, g] read from the tiled form of
// python/vllm_forge/quant/format.py (tiles of 16 output features; per tile a sequence of
// 64-byte chunks whose 32-bit lane l holds 4 k of feature 16 t + l) and dequantised in
// registers. The launcher (cpu/quant_gemm.cpp) sends many rows of x (prefill) to panels
// of W dequantised by quant_dequantize_kernel and multiplied by torch's GEMM; this file's
// GEMM serves the rest (decode, small batches) and every quantize_x call. OpenMP splits
// the tiles.
//
// Three GEMM paths, all with one fp32 accumulator lane per output feature (no horizontal
// sums, and a group's 16 scales are one vector load):
// - int8 (quantize_x with AVX512-VNNI): x rounded to int8 per block (Int8X), multiplied
//   by the codes with vpdpbusd in int32 per block, then scaled in fp32 (namespace int8);
// - dot (bf16 x with AVX512-BF16): each chunk's codes become, in registers, vectors of
//   bf16 pairs (two k of one feature per 32-bit lane) of the numbers 128 + q (int4: a
//   shift and one logic op per 32 codes, exact) or q (int8, via fp32, exact), which
//   every row of a register block multiplies with vdpbf16ps (x's pairs broadcast), one
//   group at a time; the group's sum times its scale is added to the accumulator, and
//   sum_g (m_g - 128 s_g) X_g (X_g: x's sum over the group) corrects for the 128 and
//   the min. Products are exact in fp32 and sums fp32, as in the reference.
// - fp32 (every other case and ISA): per k, the 16 features' codes become one fp32 vector
//   W = s q + m (exact: the reference's values) that every row of x multiplies (FMA).
// All read each weight byte from memory once per call whatever the number of rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>  // _mm_cvtps_epi32 on the baseline variant
#endif

#include "common/kernel_args.h"
#include "cpu/kernels/convert.h"
#include "cpu/kernels/simd.h"

namespace forge::cpu::FORGE_ISA {
namespace quant {

constexpr int kTileN = 16;       // output features per tile: one accumulator vector
constexpr int kChunkBytes = 64;  // one chunk: 4 k (int8) or 8 k (int4) of 16 features
constexpr int kTileK = 32;       // the tiled form pads k to a multiple of this
constexpr int kMr = 4;           // rows of x per register block (fp32 path)

constexpr int chunk_k(int bits) { return bits == 4 ? 8 : 4; }

// Bytes ahead of the codes being read to prefetch: a thread walks a tile's chunks in
// order, which the hardware prefetchers alone do not keep ahead of (the row form's
// kernel measured 4 KB best on SmolLM2's decode GEMMs, 2 threads; kept for this one).
constexpr int64_t kPrefetchBytes = 4096;

inline void prefetch(const void* p, int64_t bytes_ahead) {
  // As an integer: a pointer past the end of the weight would be undefined behaviour.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + bytes_ahead), 0,
                     3);
}

inline int64_t padded_k(int64_t k) { return (k + kTileK - 1) / kTileK * kTileK; }
inline int64_t num_groups(const QuantGemmArgs& a) {
  return (a.k + a.group_size - 1) / a.group_size;
}

// A tile's 16 scales (or mins) of group g as fp32.
template <typename S>
inline vfloat group_vector(const void* base, const QuantGemmArgs& a, int64_t t, int64_t g) {
  return load16(static_cast<const S*>(base) + (t * num_groups(a) + g) * kTileN);
}

// The codes of one k (k = chunk_k * c + j) of a tile's 16 features as fp32: lane l of
// chunk c holds them in byte j (bits 8, signed) or nibble j of its 32 bits (bits 4).
template <int BITS>
inline vfloat codes_at(const uint8_t* chunk, int j) {
  vu32 w;
  std::memcpy(&w, chunk, sizeof w);
  typedef int32_t vi32 __attribute__((vector_size(kLanes * sizeof(int32_t))));
  if constexpr (BITS == 8) {
    const vi32 s = (vi32)(w << (24 - 8 * j)) >> 24;  // sign-extended byte j
    return __builtin_convertvector(s, vfloat);
  } else {
    const int shift = 8 * (j % 4) + 4 * (j / 4);
    return __builtin_convertvector((w >> shift) & 15u, vfloat);
  }
}

// out[m0 + i, 16 t .. 16 t + 16) = acc[i] + bias (the last tile stops at n).
template <typename T, int MR>
inline void store_tile(const QuantGemmArgs& a, int64_t t, int64_t m0, const vfloat (&acc)[MR]) {
  T* out = static_cast<T*>(a.out);
  const T* bias = static_cast<const T*>(a.bias);
  const int64_t n0 = t * kTileN;
  const int cols = static_cast<int>(std::min<int64_t>(kTileN, a.n - n0));
  vfloat b{};
  if (bias) {
    alignas(64) float tmp[kTileN] = {};
    for (int l = 0; l < cols; ++l) tmp[l] = to_float(bias[n0 + l]);
    b = load16(tmp);
  }
  for (int i = 0; i < MR; ++i) {
    T* row = out + (m0 + i) * a.out_stride_row + n0;
    const vfloat v = acc[i] + b;
    if (cols == kTileN) {
      store16(row, v);
    } else {
      for (int l = 0; l < cols; ++l) row[l] = from_float<T>(v[l]);
    }
  }
}

// Rows [m0, m1) in register blocks of MAX_MR rows, then one block each of 4, 2 and 1 as
// needed: block(mr_tag, first row) with mr_tag an integral_constant of the block's rows.
template <int MAX_MR, typename Block>
inline void for_row_blocks(int64_t m0, int64_t m1, Block block) {
  for (; m0 + MAX_MR <= m1; m0 += MAX_MR) block(std::integral_constant<int, MAX_MR>{}, m0);
  if constexpr (MAX_MR > 4) {
    if (m0 + 4 <= m1) block(std::integral_constant<int, 4>{}, m0), m0 += 4;
  }
  if constexpr (MAX_MR > 2) {
    if (m0 + 2 <= m1) block(std::integral_constant<int, 2>{}, m0), m0 += 2;
  }
  if (m0 < m1) block(std::integral_constant<int, 1>{}, m0);
}

// ---- int8 x (QuantGemmArgs::quantize_x) ------------------------------------------------

// x rounded to int8 per block of min(32, group_size) k, as llama.cpp's Q8 activations:
// d = max|x| / 127, q = round-half-even(x * (127 / max|x|)) (0 when the max is 0), so
// x ~ d q; a block whose max is not finite gets d = NaN (its rows' outputs are NaN).
// Laid out for the int8 GEMM's broadcasts, per chunk of the weight (chunk_k(bits) k):
// [chunk][i][w] holds the chunk's words of 4 consecutive k of row i (w < words: 1 for
// int8 weights, 2 for int4), so one pointer per chunk reaches every row's words at
// constant offsets (a pointer per row would not fit in registers). Per-thread buffers
// reused across calls; k padded with zero codes to kp.
struct Int8X {
  int32_t* q;   // [kp / (4 words)][m][words] words of 4 int8
  float* d;     // [blocks][m]
  float* gsum;  // [groups][m]: sum over the group of d q (the mins' x sums)
  int64_t m, kp, blocks, block, groups, words;

  int64_t word(int64_t i, int64_t k) const {  // the word holding row i's k
    return (k / (4 * words) * m + i) * words + k / 4 % words;
  }
  float value(int64_t i, int64_t k) const {  // d q of row i, k
    int8_t c[4];
    std::memcpy(c, q + word(i, k), 4);
    return d[k / block * m + i] * c[k % 4];
  }
};

inline int x_block(const QuantGemmArgs& a) { return std::min(a.group_size, kTileK); }

typedef int32_t vi32 __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef int8_t vi8 __attribute__((vector_size(kLanes)));

// One block's 16 values of x as int8 codes (|v id| <= 127), and their sum. The product
// is rounded to fp32 first, then to the nearest integer, ties to even (the conversion's
// default mode), as the reference does: an add-and-subtract rounding trick would be fused
// with the product into one FMA under -ffp-contract=fast and round ties differently.
inline vi8 round_codes(vfloat v, float id, int32_t& sum) {
  const vfloat p = v * id;
  vi32 n;
#if defined(__AVX512F__)
  __m512 z;
  std::memcpy(&z, &p, sizeof z);
  const __m512i r = _mm512_cvtps_epi32(z);
  std::memcpy(&n, &r, sizeof n);
  sum += _mm512_reduce_add_epi32(r);
#elif defined(__SSE2__)
  for (int part = 0; part < 4; ++part) {
    __m128 z;
    std::memcpy(&z, reinterpret_cast<const float*>(&p) + 4 * part, sizeof z);
    const __m128i r = _mm_cvtps_epi32(z);
    std::memcpy(reinterpret_cast<int32_t*>(&n) + 4 * part, &r, sizeof r);
  }
  for (int l = 0; l < kLanes; ++l) sum += n[l];
#else
  for (int l = 0; l < kLanes; ++l) {
    n[l] = static_cast<int32_t>(std::nearbyint(p[l]));
    sum += n[l];
  }
#endif
  return __builtin_convertvector(n, vi8);
}

// max |v| over both vectors, and whether every value is finite.
inline float block_amax(vfloat v0, vfloat v1, bool& finite) {
  const vfloat a0 = v0 < 0 ? -v0 : v0, a1 = v1 < 0 ? -v1 : v1;
  const vfloat big = vfloat{} + std::numeric_limits<float>::max();
#if defined(__AVX512F__)
  __m512 z0, z1, zb;
  std::memcpy(&z0, &a0, sizeof z0);
  std::memcpy(&z1, &a1, sizeof z1);
  std::memcpy(&zb, &big, sizeof zb);
  finite = (_mm512_cmp_ps_mask(z0, zb, _CMP_LE_OQ) & _mm512_cmp_ps_mask(z1, zb, _CMP_LE_OQ)) ==
           0xFFFF;  // false for inf and NaN
  return _mm512_reduce_max_ps(_mm512_max_ps(z0, z1));
#else
  float amax = 0.f;
  finite = true;
  for (int l = 0; l < kLanes; ++l) {
    finite &= a0[l] <= big[l] && a1[l] <= big[l];
    amax = std::max(amax, std::max(a0[l], a1[l]));
  }
  return amax;
#endif
}

// The calling thread's buffers for x's codes, sized for `a` (filled by quantize_group).
inline Int8X int8_buffers(const QuantGemmArgs& a) {
  const int64_t m = a.m, kp = padded_k(a.k), block = x_block(a), blocks = kp / block;
  const int64_t groups = num_groups(a);
  thread_local std::vector<int32_t> q;
  thread_local std::vector<float> d, gsum;
  q.resize(kp / 4 * m);
  d.resize(blocks * m);
  gsum.resize(groups * m);
  // By pointer: inside a parallel region the names would be each worker's own vectors.
  return {q.data(), d.data(), gsum.data(), m, kp, blocks, block, groups, chunk_k(a.bits) / 4};
}

// Group g's blocks of every row of x into xq (the last group also zeroes the padding
// blocks up to kp). Groups are independent: threads split them (not rows: the rows'
// words of 4 k share cache lines).
template <typename T>
inline void quantize_group(const QuantGemmArgs& a, const Int8X& xq, int64_t g) {
  const int64_t m = a.m, block = xq.block, per_group = a.group_size / block;
  const int64_t b_end = g + 1 == xq.groups ? xq.blocks : (g + 1) * per_group;
  const T* x = static_cast<const T*>(a.x);
  for (int64_t i = 0; i < m; ++i) {
    const T* row = x + i * a.x_stride_row;
    float group_sum = 0.f;
    for (int64_t b = g * per_group; b < b_end; ++b) {
      // The block's values in fp32, zero past k and past a block of 16.
      const int64_t k0 = b * block, len = std::clamp<int64_t>(a.k - k0, 0, block);
      vfloat v[2] = {};
      if (len == block) {
        v[0] = load16(row + k0);
        if (block == 2 * kLanes) v[1] = load16(row + k0 + kLanes);
      } else if (len > 0) {
        alignas(64) float tail[2 * kLanes] = {};
        for (int64_t j = 0; j < len; ++j) tail[j] = to_float(row[k0 + j]);
        v[0] = load16(tail);
        v[1] = load16(tail + kLanes);
      }
      bool finite;
      const float amax = block_amax(v[0], v[1], finite);
      const float id = finite && amax > 0.f ? 127.f / amax : 0.f;
      int32_t sum = 0;
      for (int h = 0; h * kLanes < block; ++h) {
        const vi8 c = round_codes(v[h], id, sum);
        for (int w = 0; w < kLanes / 4; ++w)
          std::memcpy(xq.q + xq.word(i, k0 + h * kLanes + 4 * w),
                      reinterpret_cast<const char*>(&c) + 4 * w, 4);
      }
      const float db = finite ? amax / 127.f : std::numeric_limits<float>::quiet_NaN();
      xq.d[b * m + i] = db;
      group_sum += db * static_cast<float>(sum);
    }
    xq.gsum[g * m + i] = group_sum;
  }
}

template <typename T>
inline Int8X quantize_x(const QuantGemmArgs& a) {
  const Int8X xq = int8_buffers(a);
  for (int64_t g = 0; g < xq.groups; ++g) quantize_group<T>(a, xq, g);
  return xq;
}

// x rows as fp32 (or, with quantize_x, x's int8 rounding d q), padded with zeros to kp,
// in a per-thread buffer reused across calls.
template <typename T>
inline const float* fp32_rows(const QuantGemmArgs& a, int64_t kp) {
  thread_local std::vector<float> xs;
  xs.assign(a.m * kp, 0.f);
  if (a.quantize_x) {
    const Int8X xq = quantize_x<T>(a);
    for (int64_t i = 0; i < a.m; ++i)
      for (int64_t k = 0; k < a.k; ++k) xs[i * kp + k] = xq.value(i, k);
    return xs.data();
  }
  const T* x = static_cast<const T*>(a.x);
  for (int64_t i = 0; i < a.m; ++i)
    for (int64_t k = 0; k < a.k; ++k) xs[i * kp + k] = to_float(x[i * a.x_stride_row + k]);
  return xs.data();
}

// acc[i] = sum_k x[m0 + i][k] W[16 t .. 16 t + 16)[k] over MR rows.
template <typename S, int BITS, int MR>
inline void fp32_block(const QuantGemmArgs& a, const float* xs, int64_t kp, int64_t t, int64_t m0,
                       vfloat (&acc)[MR]) {
  for (int i = 0; i < MR; ++i) acc[i] = vfloat{};
  const uint8_t* codes = a.qweight + t * a.q_stride_tile;
  constexpr int ck = chunk_k(BITS);
  const int64_t groups = num_groups(a);
  for (int64_t g = 0; g < groups; ++g) {
    const vfloat s = group_vector<S>(a.scales, a, t, g);
    const vfloat mn = a.mins ? group_vector<S>(a.mins, a, t, g) : vfloat{};
    const int64_t k_end = std::min<int64_t>((g + 1) * a.group_size, a.k);
    for (int64_t c = g * a.group_size / ck; c * ck < k_end; ++c) {
      const uint8_t* chunk = codes + c * kChunkBytes;
      prefetch(chunk, kPrefetchBytes);
      for (int j = 0; j < ck; ++j) {
        const vfloat w = codes_at<BITS>(chunk, j) * s + mn;
        for (int i = 0; i < MR; ++i) acc[i] += w * xs[(m0 + i) * kp + c * ck + j];
      }
    }
  }
}

template <typename T, typename S, int BITS>
void gemm_fp32(const QuantGemmArgs& a) {
  const int64_t kp = padded_k(a.k), tiles = (a.n + kTileN - 1) / kTileN;
  const float* xs = fp32_rows<T>(a, kp);
#pragma omp parallel for schedule(static) if (a.m * a.n * a.k > (1 << 18))
  for (int64_t t = 0; t < tiles; ++t) {
    for_row_blocks<kMr>(0, a.m, [&](auto mr_tag, int64_t m0) {
      constexpr int MR = decltype(mr_tag)::value;
      vfloat acc[MR];
      fp32_block<S, BITS, MR>(a, xs, kp, t, m0, acc);
      store_tile<T, MR>(a, t, m0, acc);
    });
  }
}

// ---- dot path (bf16 x, AVX512-BF16) -----------------------------------------------------

#if defined(__AVX512BF16__)
namespace dot {

// vdpbf16ps multiplies pairs: each 32-bit lane of a code vector holds two k of one
// feature as bf16, so a chunk's lane l (feature 16 t + l) becomes, by shifts and masks
// in place (no shuffle), the pairs (k0, k2), (k1, k3) (int8: its 4 k) and for int4 also
// (k4, k6), (k5, k7): one fp32 accumulator lane per feature, as in the int8 path. x is
// laid out to match: each 4 k of x as the words (x0, x2), (x1, x3).

constexpr int kMrDot = 8;  // rows of x per register block: 8 partial + 8 total vectors

// x as bf16 padded with zeros to kp, per chunk of the weight (ck = chunk_k k) [chunk]
// [row][ck] with each 4 k in the order 0, 2, 1, 3 (so one pointer per chunk reaches
// every row's pairs at constant offsets); and each row's group sums X_g (fp32).
// Per-thread buffers reused across calls.
struct PreparedX {
  const bf16* x;      // [kp / ck][m][ck]
  const float* sums;  // [m][groups]
  int64_t kp;
  int64_t groups;
};

inline PreparedX prepare_x(const QuantGemmArgs& a) {
  const int64_t kp = padded_k(a.k), groups = num_groups(a), ck = chunk_k(a.bits);
  thread_local std::vector<bf16> xs, row;
  thread_local std::vector<float> sums;
  xs.resize(a.m * kp);
  row.resize(kp);
  sums.resize(a.m * groups);
  const bf16* x = static_cast<const bf16*>(a.x);
  for (int64_t i = 0; i < a.m; ++i) {
    bf16* r = row.data();
    std::memcpy(r, x + i * a.x_stride_row, a.k * sizeof(bf16));
    std::memset(static_cast<void*>(r + a.k), 0, (kp - a.k) * sizeof(bf16));
    // X_g, 16 k at a time (kp and the group sizes are multiples of 16; the padding is 0).
    for (int64_t g = 0; g < groups; ++g) {
      vfloat acc{};
      for (int64_t k = g * a.group_size; k < std::min<int64_t>((g + 1) * a.group_size, kp);
           k += kLanes)
        acc += load16(r + k);
      sums[i * groups + g] = reduce_add(acc);
    }
    for (int64_t c = 0; c < kp / ck; ++c) {
      bf16* dst = xs.data() + (c * a.m + i) * ck;
      for (int64_t k = 0; k < ck; k += 4) {
        dst[k] = r[c * ck + k];
        dst[k + 1] = r[c * ck + k + 2];
        dst[k + 2] = r[c * ck + k + 1];
        dst[k + 3] = r[c * ck + k + 3];
      }
    }
  }
  return {xs.data(), sums.data(), kp, groups};
}

// A chunk's codes as bf16 pair vectors v[p], pair p matching x's word p (module note).
// int4: the bf16 bits 0x4300 | q are the number 128 + q (exact; the GEMM takes the 128
// back). int8: the fp32 of q has its low 16 bits zero, so its high half is q in bf16.
template <int BITS>
inline void unpack(const uint8_t* chunk, __m512i (&v)[BITS == 4 ? 4 : 2]) {
  const __m512i w = _mm512_loadu_si512(chunk);
  if constexpr (BITS == 4) {
    const __m512i nibbles = _mm512_set1_epi32(0x000F000F), bias = _mm512_set1_epi32(0x43004300);
    // Lane bits: byte j holds k = j (low nibble) and k = 4 + j (high nibble); a 16-bit
    // half at shift s holds the nibbles at bits s and s + 16.
    v[0] = _mm512_ternarylogic_epi32(w, nibbles, bias, 0xEA);  // (w & 15) | 0x4300: k0, k2
    v[1] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(w, 8), nibbles, bias, 0xEA);   // k1, k3
    v[2] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(w, 4), nibbles, bias, 0xEA);   // k4, k6
    v[3] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(w, 12), nibbles, bias, 0xEA);  // k5, k7
  } else {
    const __m512i k0 = (__m512i)_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 24), 24));
    const __m512i k1 = (__m512i)_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 16), 24));
    const __m512i k2 = (__m512i)_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(w, 8), 24));
    const __m512i k3 = (__m512i)_mm512_cvtepi32_ps(_mm512_srai_epi32(w, 24));
    // Low halves from the first k's high half, high halves from the second's.
    v[0] = _mm512_mask_blend_epi16(0x55555555, k2, _mm512_srli_epi32(k0, 16));
    v[1] = _mm512_mask_blend_epi16(0x55555555, k3, _mm512_srli_epi32(k1, 16));
  }
}

// sum += v . the pair of bf16 at x broadcast, the broadcast folded into the instruction's
// memory operand ({1to16}), as for vpdpbusd in the int8 path.
inline __m512 dpbf16_bcast(__m512 sum, __m512i v, const bf16* x) {
  asm("vdpbf16ps %2%{1to16%}, %1, %0"
      : "+v"(sum)
      : "v"(v), "m"(*reinterpret_cast<const int32_t*>(x)));
  return sum;
}

// acc[i] (one fp32 lane per feature) = tile t's product with x's rows m0 + i, as the
// codes stand (int4: 128 + q): per group, the products' sum times the group's scale.
template <typename S, int BITS, int MR>
inline void block(const QuantGemmArgs& a, const PreparedX& px, int64_t t, int64_t m0,
                  __m512 (&acc)[MR]) {
  constexpr int ck = chunk_k(BITS), pairs = ck / 2;
  const int64_t per_group = a.group_size / ck;
  const int64_t chunks = (a.k + ck - 1) / ck;  // the rest meet x's zero padding
  const uint8_t* codes = a.qweight + t * a.q_stride_tile;
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g * per_group < chunks; ++g) {
    __m512 part[MR];
    for (int i = 0; i < MR; ++i) part[i] = _mm512_setzero_ps();
    for (int64_t c = g * per_group; c < std::min(chunks, (g + 1) * per_group); ++c) {
      prefetch(codes + c * kChunkBytes, kPrefetchBytes);
      __m512i v[pairs];
      unpack<BITS>(codes + c * kChunkBytes, v);
      const bf16* xc = px.x + (c * a.m + m0) * ck;  // row m0 + i's pairs: xc + i ck + 2 p
      for (int i = 0; i < MR; ++i)
        for (int p = 0; p < pairs; ++p) part[i] = dpbf16_bcast(part[i], v[p], xc + i * ck + 2 * p);
    }
    const vfloat sv = group_vector<S>(a.scales, a, t, g);
    __m512 s;
    std::memcpy(&s, &sv, sizeof s);
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(part[i], s, acc[i]);
  }
}

// Tile t's corrections of rows m0 + i: sum_g coef_g X_ig with coef = m - 128 s (int4,
// whose codes are 128 + q) or m (int8 with mins); zero for int8 without mins.
template <typename S, int BITS, int MR>
inline void corrections(const QuantGemmArgs& a, const PreparedX& px, int64_t t, int64_t m0,
                        vfloat (&out)[MR]) {
  for (int i = 0; i < MR; ++i) out[i] = vfloat{};
  if (BITS == 8 && !a.mins) return;
  for (int64_t g = 0; g < px.groups; ++g) {
    vfloat coef = a.mins ? group_vector<S>(a.mins, a, t, g) : vfloat{};
    if constexpr (BITS == 4) coef -= 128.f * group_vector<S>(a.scales, a, t, g);
    for (int i = 0; i < MR; ++i) out[i] += coef * px.sums[(m0 + i) * px.groups + g];
  }
}

template <typename S, int BITS>
void gemm(const QuantGemmArgs& a) {
  const PreparedX px = prepare_x(a);
  const int64_t tiles = (a.n + kTileN - 1) / kTileN;
#pragma omp parallel for schedule(static) if (a.m * a.n * a.k > (1 << 18))
  for (int64_t t = 0; t < tiles; ++t) {
    for_row_blocks<kMrDot>(0, a.m, [&](auto mr_tag, int64_t m0) {
      constexpr int MR = decltype(mr_tag)::value;
      __m512 acc[MR];
      block<S, BITS, MR>(a, px, t, m0, acc);
      vfloat out[MR];
      corrections<S, BITS, MR>(a, px, t, m0, out);
      for (int i = 0; i < MR; ++i) {
        vfloat v;
        std::memcpy(&v, &acc[i], sizeof v);
        out[i] += v;
      }
      store_tile<bf16, MR>(a, t, m0, out);
    });
  }
}

}  // namespace dot
#endif

// ---- int8 path (quantize_x, AVX512-VNNI) ------------------------------------------------

#if defined(__AVX512VNNI__)
namespace int8 {

constexpr int kMr8 = 8;  // rows of x per register block: 8 int32 + 8 + 8 fp32 vectors

// sum += u (unsigned bytes) . the int32 at x broadcast, with the broadcast folded into
// the instruction's memory operand ({1to16}); GCC 12 issues a separate vpbroadcastd.
inline __m512i dpbusd_bcast(__m512i sum, __m512i u, const int32_t* x) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(sum) : "v"(u), "m"(*x));
  return sum;
}

// acc[i] (one fp32 lane per feature) = tile t's product with x's int8 rows m0 + i.
// Per block of XB k of x: vpdpbusd sums 4 (unsigned code) x (signed x) products per lane
// in int32, exactly; the block's sum times d goes to fp32, the group's times its scale.
// int4 codes are 0..15 as stored. int8 codes are flipped to q + 128, unsigned, which adds
// 128 s sum(d q) per group: taken back with the mins, coef = m - 128 s, times gsum.
template <typename S, int BITS, int XB, int MR>
inline void block(const QuantGemmArgs& a, const Int8X& xq, int64_t t, int64_t m0,
                  __m512 (&acc)[MR]) {
  constexpr int ck = chunk_k(BITS), chunks = XB / ck;
  const int64_t m = xq.m, per_group = a.group_size / XB;
  const int64_t blocks = (a.k + XB - 1) / XB;  // the rest meet x's zero codes
  const uint8_t* codes = a.qweight + t * a.q_stride_tile;
  // Chunk c's words of row m0 + i: x_words[c * m * ck / 4 + i * ck / 4 + (0 or 1)].
  const int32_t* x_words = xq.q + m0 * (ck / 4);
  const __m512i low = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const bool corrected = BITS == 8 || a.mins;
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g * per_group < blocks; ++g) {
    __m512 part[MR];
    for (int i = 0; i < MR; ++i) part[i] = _mm512_setzero_ps();
    for (int64_t b = g * per_group; b < std::min(blocks, (g + 1) * per_group); ++b) {
      __m512i sum[MR];
      for (int i = 0; i < MR; ++i) sum[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int c = 0; c < chunks; ++c) {
        const int64_t chunk = b * chunks + c;
        prefetch(codes + chunk * kChunkBytes, kPrefetchBytes);
        const __m512i w = _mm512_loadu_si512(codes + chunk * kChunkBytes);
        const int32_t* x0 = x_words + chunk * (ck / 4) * m;
        if constexpr (BITS == 4) {
          const __m512i lo = _mm512_and_si512(w, low);
          const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low);
          for (int i = 0; i < MR; ++i) {
            sum[i] = dpbusd_bcast(sum[i], lo, x0 + 2 * i);
            sum[i] = dpbusd_bcast(sum[i], hi, x0 + 2 * i + 1);
          }
        } else {
          const __m512i u = _mm512_xor_si512(w, flip);
          for (int i = 0; i < MR; ++i) sum[i] = dpbusd_bcast(sum[i], u, x0 + i);
        }
      }
      const float* d = xq.d + b * m + m0;
      for (int i = 0; i < MR; ++i)
        // maskz with all lanes: the plain form trips GCC 12's -Wmaybe-uninitialized (105593).
        part[i] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, sum[i]), _mm512_set1_ps(d[i]),
                                  part[i]);
    }
    const vfloat sv = group_vector<S>(a.scales, a, t, g);
    vfloat cv = a.mins ? group_vector<S>(a.mins, a, t, g) : vfloat{};
    if constexpr (BITS == 8) cv -= 128.f * sv;
    __m512 s, coef;
    std::memcpy(&s, &sv, sizeof s);
    std::memcpy(&coef, &cv, sizeof coef);
    const float* gsum = xq.gsum + g * m + m0;
    for (int i = 0; i < MR; ++i) {
      acc[i] = _mm512_fmadd_ps(part[i], s, acc[i]);
      if (corrected) acc[i] = _mm512_fmadd_ps(coef, _mm512_set1_ps(gsum[i]), acc[i]);
    }
  }
}

// One parallel region: the threads quantise x's groups, then (after the loop's barrier)
// split the tiles; a second region would cost another fork and join per call. Rows go
// in panels whose codes stay in L2 (kPanelBytes): each tile reads its panel's x from
// cache, and the weight is read once per panel (once in all for decode's few rows).
constexpr int64_t kPanelBytes = 256 << 10;

template <typename T, typename S, int BITS, int XB>
void gemm(const QuantGemmArgs& a, const Int8X& xq) {
  const int64_t tiles = (a.n + kTileN - 1) / kTileN;
  const int64_t panel =
      std::max<int64_t>(kMr8, kPanelBytes / std::max<int64_t>(xq.kp, 1) / kMr8 * kMr8);
#pragma omp parallel if (a.m * a.n * a.k > (1 << 18))
  {
#pragma omp for schedule(static)
    for (int64_t g = 0; g < xq.groups; ++g) quantize_group<T>(a, xq, g);
    for (int64_t p0 = 0; p0 < a.m; p0 += panel) {
      const int64_t p1 = std::min(a.m, p0 + panel);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles; ++t) {
        for_row_blocks<kMr8>(p0, p1, [&](auto mr_tag, int64_t m0) {
          constexpr int MR = decltype(mr_tag)::value;
          __m512 acc[MR];
          block<S, BITS, XB, MR>(a, xq, t, m0, acc);
          vfloat out[MR];
          std::memcpy(out, acc, sizeof out);
          store_tile<T, MR>(a, t, m0, out);
        });
      }
    }
  }
}

template <typename T, typename S, int BITS>
void gemm(const QuantGemmArgs& a) {
  const Int8X xq = int8_buffers(a);
  xq.block == 16 ? gemm<T, S, BITS, 16>(a, xq) : gemm<T, S, BITS, 32>(a, xq);
}

}  // namespace int8
#endif

template <typename T, typename S, int BITS>
void gemm(const QuantGemmArgs& a) {
#if defined(__AVX512VNNI__)
  if (a.quantize_x) {
    int8::gemm<T, S, BITS>(a);
    return;
  }
#endif
#if defined(__AVX512BF16__)
  if constexpr (std::is_same_v<T, bf16>) {
    if (!a.quantize_x) {
      dot::gemm<S, BITS>(a);
      return;
    }
  }
#endif
  gemm_fp32<T, S, BITS>(a);
}

// W^T for features [n_begin, n_end): per k, the 16 features of a tile are one vector
// W = s q + m (codes_at, the GEMM's values), stored whole (the panel's row length is a
// multiple of 16, so the last tile's padding lanes land inside it).
template <typename D, typename S, int BITS>
void dequantize(const QuantDequantArgs& d) {
  const QuantGemmArgs& a = *d.gemm;
  const int64_t t0 = d.n_begin / kTileN, t1 = (d.n_end + kTileN - 1) / kTileN;
  constexpr int ck = chunk_k(BITS);
  const int64_t groups = num_groups(a);
#pragma omp parallel for schedule(static)
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* codes = a.qweight + t * a.q_stride_tile;
    D* dst = static_cast<D*>(d.dst) + (t * kTileN - d.n_begin);
    for (int64_t g = 0; g < groups; ++g) {
      const vfloat s = group_vector<S>(a.scales, a, t, g);
      const vfloat mn = a.mins ? group_vector<S>(a.mins, a, t, g) : vfloat{};
      const int64_t k_end = std::min<int64_t>((g + 1) * a.group_size, a.k);
      for (int64_t k0 = g * a.group_size; k0 < k_end; k0 += ck) {
        const uint8_t* chunk = codes + k0 / ck * kChunkBytes;
        prefetch(chunk, kPrefetchBytes);
        for (int j = 0; j < ck && k0 + j < k_end; ++j)
          store16(dst + (k0 + j) * d.dst_stride_row, codes_at<BITS>(chunk, j) * s + mn);
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
