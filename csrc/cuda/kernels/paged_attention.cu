// paged_attention on CUDA: the unified varlen contract of the CPU kernel (decodes,
// prefills and chunked prefills in one batch; causal; GQA; sliding window; soft-cap).
//
// Work item = one CUDA block: BLOCK_Q consecutive query tokens of one sequence times the
// GROUP query heads of one KV head (GQA packing: each K/V tile is read from global
// memory once for all of them), R = BLOCK_Q * GROUP rows. The block walks its keys in
// tiles of kTile tokens gathered through the block table (16-byte loads when the cache
// rows are contiguous), computes the R x kTile scores in fp32, updates an online softmax
// per row, and accumulates P V into an fp32 accumulator in shared memory. Scores never
// reach global memory.
//
// Split-KV: when batch x KV heads would leave SMs idle (pure decode batches), the
// launcher splits each sequence's keys over `num_splits` blocks; each writes its
// unnormalised partial output and (max, sum), and merge_splits_kernel combines them
// with log-sum-exp weights.
//
// Sequences are found without a host sync: block q_block belongs to the last sequence s
// with query_start_loc[s] / BLOCK_Q + s <= q_block, which leaves each sequence at least
// ceil(q_len / BLOCK_Q) items; spare ones exit at once.
//
// Tensor cores: for bf16/fp16 work items of a multiple of 16 rows (prefill tiles, and
// decode when the GQA group is 16 or 32; head size a multiple of 16), Q K^T and P V run
// as 16x16x16 WMMA products (mma.sync on sm_80+) with fp32 accumulation; P is rounded to
// the cache dtype for the second product, as flash attention does. Other decodes and
// fp32 use FMA. Not yet: wgmma (sm_90a), register-resident accumulators, more than 16
// rows per prefill item (only 2 of the 4 warps have Q K^T work).
#include <mma.h>

#include <type_traits>

#include "cuda/kernels/common.cuh"
#include "cuda/kernels/launch.h"

namespace forge::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 32;  // keys per tile: one per lane in the softmax step
static_assert(kTile == kWarp, "the online-softmax step gives each lane one key of the tile");
constexpr int kPrefillRows = 16;

struct Item {
  int seq, first_tok, q_len, q_start, seq_len;
};

__device__ bool find_item(const PagedAttentionArgs& a, int block_q, Item& item) {
  int lo = 0, hi = a.num_seqs - 1;
  const int q_block = blockIdx.x;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (a.query_start_loc[mid] / block_q + mid <= q_block)
      lo = mid;
    else
      hi = mid - 1;
  }
  item.seq = lo;
  item.q_start = a.query_start_loc[lo];
  item.q_len = a.query_start_loc[lo + 1] - item.q_start;
  item.first_tok = (q_block - (item.q_start / block_q + lo)) * block_q;
  item.seq_len = a.seq_lens[lo];
  return item.first_tok < item.q_len;
}

// Shared memory layout, in floats then T: q [R][D], acc [R][D], scores [R][kTile],
// m, l, alpha [R], then keys [kTile][D + pad] and values [kTile][D] in T; with tensor
// cores also q [R][D + 8] and p [R][kTile + 8] in T. WMMA wants 32-byte aligned tiles
// and leading dimensions of whole 16-byte units, hence the 8-element pads there (the
// FMA path pads keys by one 32-bit word instead, against bank conflicts).
constexpr int kMmaPad = 8;
constexpr size_t kSmemAlign = 128;

template <typename T>
__host__ __device__ constexpr bool mma_eligible(int rows, int d) {
  return !std::is_same_v<T, float> && rows % 16 == 0 && d % 16 == 0;
}

template <typename T>
struct Smem {
  __host__ __device__ static int key_pad(bool mma) {
    return mma ? kMmaPad : (4 / sizeof(T) > 0 ? 4 / sizeof(T) : 1);
  }
  __host__ __device__ static size_t floats(int rows, int d) {
    return 2 * rows * d + rows * kTile + 3 * rows;
  }
  __host__ __device__ static size_t float_bytes(int rows, int d) {
    return (floats(rows, d) * sizeof(float) + kSmemAlign - 1) / kSmemAlign * kSmemAlign;
  }
  static size_t bytes(int rows, int d, bool mma) {
    size_t b =
        float_bytes(rows, d) + kTile * (d + key_pad(mma)) * sizeof(T) + kTile * d * sizeof(T);
    if (mma) b += rows * (d + kMmaPad) * sizeof(T) + rows * (kTile + kMmaPad) * sizeof(T);
    return b;
  }
};

template <typename T>
__device__ __forceinline__ void load_tile(T* dst, int dst_stride, const T* cache,
                                          int64_t stride_block, int64_t stride_slot,
                                          int64_t stride_dim, const int32_t* blocks, int lo, int hi,
                                          int block_size, int d) {
  // Rows past `hi` become zeros: the masked scores ignore them, and P V must not meet
  // whatever stale data (even NaN) an unused slot holds.
  constexpr int N = Pack<T>::kSize;
  const bool packed = stride_dim == 1 && d % N == 0 && stride_slot % N == 0 &&
                      stride_block % N == 0 && reinterpret_cast<uintptr_t>(cache) % 16 == 0;
  if (packed) {
    const int per_row = d / N;
    for (int i = threadIdx.x; i < kTile * per_row; i += blockDim.x) {
      const int t = i / per_row, c = (i % per_row) * N;
      const int pos = lo + t;
      Pack<T> p;
      if (pos < hi) {
        const int64_t block = blocks[pos / block_size];
        p = load_pack(cache + block * stride_block + (pos % block_size) * stride_slot + c);
      } else {
        for (int j = 0; j < N; ++j) p.v[j] = from_float<T>(0.f);
      }
      for (int j = 0; j < N; ++j) dst[t * dst_stride + c + j] = p.v[j];
    }
  } else {
    // Neighbouring threads take neighbouring keys when those are contiguous (FORGE_ATTN's
    // keys, transposed per block), else neighbouring dims.
    const bool slot_major = stride_slot == 1;
    for (int i = threadIdx.x; i < kTile * d; i += blockDim.x) {
      const int t = slot_major ? i % kTile : i / d;
      const int c = slot_major ? i / kTile : i % d;
      const int pos = lo + t;
      T x = from_float<T>(0.f);
      if (pos < hi) {
        const int64_t block = blocks[pos / block_size];
        x = cache[block * stride_block + (pos % block_size) * stride_slot + c * stride_dim];
      }
      dst[t * dst_stride + c] = x;
    }
  }
}

// Scaled, soft-capped score of query position `pos` and key position `kpos`, or -inf
// when the key is masked (past `hi`, in the future, or outside the window).
__device__ __forceinline__ float finish_score(float s, const PagedAttentionArgs& a, int pos,
                                              int kpos, int hi) {
  s *= a.scale;
  if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
  bool ok = kpos < hi && kpos <= pos;
  if (a.sliding_window > 0) ok = ok && kpos > pos - a.sliding_window;
  return ok ? s : -INFINITY;
}

// One 16x16 fp32 tile c (row-major, leading dimension ldc, shared memory) gets A times B
// on tensor cores: A is 16 x k_len row-major (lda), B is k_len x 16 in BLayout with its
// 16-row chunks b_step elements apart. `accumulate` adds to c instead of overwriting it.
template <typename T, typename BLayout>
__device__ __forceinline__ void wmma_tile(float* c, int ldc, bool accumulate, const T* a, int lda,
                                          const T* b, int ldb, int b_step, int k_len) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  if (accumulate) {
    wmma::load_matrix_sync(acc, c, ldc, wmma::mem_row_major);
  } else {
    wmma::fill_fragment(acc, 0.f);
  }
  for (int k = 0; k < k_len; k += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a_frag;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> b_frag;
    wmma::load_matrix_sync(a_frag, a + k, lda);
    wmma::load_matrix_sync(b_frag, b + k / 16 * b_step, ldb);
    wmma::mma_sync(acc, a_frag, b_frag, acc);
  }
  wmma::store_matrix_sync(c, acc, ldc, wmma::mem_row_major);
}

template <typename T, bool kMma>
__global__ void paged_attention_kernel(PagedAttentionArgs a, int num_tokens, int block_q,
                                       AttentionSplits splits) {
  Item it;
  if (!find_item(a, block_q, it)) return;
  const int group = a.num_heads / a.num_kv_heads;
  const int rows = block_q * group;
  const int d = a.head_size;
  const int kv_head = blockIdx.y, split = blockIdx.z;
  const int context = it.seq_len - it.q_len;

  extern __shared__ __align__(kSmemAlign) unsigned char smem_raw[];
  float* q_s = reinterpret_cast<float*>(smem_raw);
  float* acc_s = q_s + rows * d;
  float* s_s = acc_s + rows * d;
  float* m_s = s_s + rows * kTile;
  float* l_s = m_s + rows;
  float* alpha_s = l_s + rows;
  T* k_s = reinterpret_cast<T*>(smem_raw + Smem<T>::float_bytes(rows, d));
  const int k_stride = d + Smem<T>::key_pad(kMma);
  T* v_s = k_s + kTile * k_stride;
  // Tensor-core operands: q and p in T (unused by the FMA path).
  const int q_ld = d + kMmaPad, p_ld = kTile + kMmaPad;
  T* qt_s = v_s + kTile * d;
  T* pt_s = qt_s + rows * q_ld;

  // Row r: token first_tok + r / group of the sequence, head kv_head * group + r % group.
  const T* query = static_cast<const T*>(a.query);
  for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
    const int r = i / d, c = i % d;
    const int tok = it.first_tok + r / group;
    float x = 0.f;
    if (tok < it.q_len) {
      const int64_t token = it.q_start + tok;
      x = to_float(
          query[token * a.q_stride_token + (kv_head * group + r % group) * a.q_stride_head + c]);
    }
    q_s[i] = x;
    acc_s[i] = 0.f;
    if constexpr (kMma) qt_s[r * q_ld + c] = from_float<T>(x);  // exact: x came from T
  }
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    m_s[r] = -INFINITY;
    l_s[r] = 0.f;
  }

  const int last_tok = min(it.first_tok + block_q, it.q_len) - 1;
  const int key_end = context + last_tok + 1;
  int key_start = 0;
  if (a.sliding_window > 0) key_start = max(context + it.first_tok - a.sliding_window + 1, 0);
  const int tiles = (key_end - key_start + kTile - 1) / kTile;
  const int per_split = (tiles + splits.num_splits - 1) / splits.num_splits;
  const int lo = key_start + split * per_split * kTile;
  const int hi = min(lo + per_split * kTile, key_end);
  const int32_t* blocks = a.block_table + it.seq * a.block_table_stride;
  const T* kc = static_cast<const T*>(a.key_cache) + kv_head * a.k_stride_head;
  const T* vc = static_cast<const T*>(a.value_cache) + kv_head * a.v_stride_head;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;

  for (int start = lo; start < hi; start += kTile) {
    __syncthreads();  // the previous tile is fully consumed
    load_tile(k_s, k_stride, kc, a.k_stride_block, a.k_stride_slot, a.k_stride_dim, blocks, start,
              hi, a.block_size, d);
    load_tile(v_s, d, vc, a.v_stride_block, a.v_stride_slot, a.v_stride_dim, blocks, start, hi,
              a.block_size, d);
    __syncthreads();
    const int pos0 = context + it.first_tok;  // query position of row r: pos0 + r / group
    if constexpr (kMma) {
      // Scores: 16x16 tiles of Q K^T on tensor cores, warp per tile (K^T is the key tile
      // read column-major); then scale, soft-cap and mask, thread per (row, key).
      for (int t = warp; t < rows / 16 * (kTile / 16); t += warps) {
        const int r0 = t / (kTile / 16) * 16, n0 = t % (kTile / 16) * 16;
        wmma_tile<T, nvcuda::wmma::col_major>(s_s + r0 * kTile + n0, kTile, false, qt_s + r0 * q_ld,
                                              q_ld, k_s + n0 * k_stride, k_stride, 16, d);
      }
      __syncthreads();
      for (int i = threadIdx.x; i < rows * kTile; i += blockDim.x)
        s_s[i] = finish_score(s_s[i], a, pos0 + i / kTile / group, start + i % kTile, hi);
    } else {
      // Scores: thread per (row, key); a warp shares one row, so q reads broadcast.
      for (int i = threadIdx.x; i < rows * kTile; i += blockDim.x) {
        const int r = i / kTile, t = i % kTile;
        const float* q = q_s + r * d;
        const T* k = k_s + t * k_stride;
        float s = 0.f;
        for (int c = 0; c < d; ++c) s += q[c] * to_float(k[c]);
        s_s[i] = finish_score(s, a, pos0 + r / group, start + t, hi);
      }
    }
    __syncthreads();
    // Online softmax: warp per row, lane per key.
    for (int r = warp; r < rows; r += warps) {
      const float s = s_s[r * kTile + lane];
      const float m_old = m_s[r];
      const float m_new = fmaxf(m_old, warp_max(s));
      const float m_safe = m_new == -INFINITY ? 0.f : m_new;  // nothing seen yet
      const float p = __expf(s - m_safe);
      const float sum = warp_sum(p);
      if constexpr (kMma) {
        pt_s[r * p_ld + lane] = from_float<T>(p);
      } else {
        s_s[r * kTile + lane] = p;
      }
      if (lane == 0) {
        const float alpha = __expf(m_old - m_safe);
        alpha_s[r] = alpha;
        l_s[r] = l_s[r] * alpha + sum;
        m_s[r] = m_new;
      }
    }
    __syncthreads();
    if constexpr (kMma) {
      // acc = acc * alpha, then acc += P V in 16x16 tiles on tensor cores, warp per tile.
      for (int i = threadIdx.x; i < rows * d; i += blockDim.x) acc_s[i] *= alpha_s[i / d];
      __syncthreads();
      for (int t = warp; t < rows / 16 * (d / 16); t += warps) {
        const int r0 = t / (d / 16) * 16, n0 = t % (d / 16) * 16;
        wmma_tile<T, nvcuda::wmma::row_major>(acc_s + r0 * d + n0, d, true, pt_s + r0 * p_ld, p_ld,
                                              v_s + n0, d, 16 * d, kTile);
      }
    } else {
      // acc = acc * alpha + P V: thread per (row, dim).
      for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
        const int r = i / d, c = i % d;
        const float* p = s_s + r * kTile;
        float x = acc_s[i] * alpha_s[r];
        for (int t = 0; t < kTile; ++t) x += p[t] * to_float(v_s[t * d + c]);
        acc_s[i] = x;
      }
    }
  }
  __syncthreads();

  for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
    const int r = i / d, c = i % d;
    const int tok = it.first_tok + r / group;
    if (tok >= it.q_len) continue;
    const int64_t token = it.q_start + tok;
    const int head = kv_head * group + r % group;
    if (splits.num_splits == 1) {
      const float l = l_s[r];
      static_cast<T*>(a.out)[token * a.out_stride_token + head * a.out_stride_head + c] =
          from_float<T>(l > 0.f ? acc_s[i] / l : 0.f);
    } else {
      const int64_t part = (static_cast<int64_t>(split) * num_tokens + token) * a.num_heads + head;
      splits.partial_out[part * d + c] = acc_s[i];
      if (c == 0) {
        splits.partial_stats[part * 2] = m_s[r];
        splits.partial_stats[part * 2 + 1] = l_s[r];
      }
    }
  }
}

template <typename T>
__global__ void merge_splits_kernel(PagedAttentionArgs a, int num_tokens, AttentionSplits splits) {
  const int64_t token = blockIdx.x;
  const int head = blockIdx.y;
  float m_max = -INFINITY;
  for (int s = 0; s < splits.num_splits; ++s) {
    const int64_t part = (static_cast<int64_t>(s) * num_tokens + token) * a.num_heads + head;
    m_max = fmaxf(m_max, splits.partial_stats[part * 2]);
  }
  for (int c = threadIdx.x; c < a.head_size; c += blockDim.x) {
    float num = 0.f, den = 0.f;
    for (int s = 0; s < splits.num_splits; ++s) {
      const int64_t part = (static_cast<int64_t>(s) * num_tokens + token) * a.num_heads + head;
      const float m = splits.partial_stats[part * 2];
      if (m == -INFINITY) continue;  // a split with no keys for this row
      const float w = __expf(m - m_max);
      num += w * splits.partial_out[part * a.head_size + c];
      den += w * splits.partial_stats[part * 2 + 1];
    }
    static_cast<T*>(a.out)[token * a.out_stride_token + head * a.out_stride_head + c] =
        from_float<T>(den > 0.f ? num / den : 0.f);
  }
}

// Raises the dynamic shared-memory limit of paged_attention_kernel<T, kMma> to what the
// device allows, once per device and kernel (the launcher checked that the request fits).
template <typename T, bool kMma>
cudaError_t allow_large_smem() {
  static int raised[64] = {};  // one table per kernel instantiation
  int device = 0, limit = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  if (device < 64 && raised[device]) return cudaSuccess;
  e = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e == cudaSuccess) {
    e = cudaFuncSetAttribute(paged_attention_kernel<T, kMma>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
  }
  if (e == cudaSuccess && device < 64) raised[device] = 1;
  return e;
}

template <typename T, bool kMma>
cudaError_t launch_variant(const PagedAttentionArgs& a, int num_tokens, int block_q,
                           const AttentionSplits& splits, cudaStream_t stream) {
  const int group = a.num_heads / a.num_kv_heads;
  const size_t smem = Smem<T>::bytes(block_q * group, a.head_size, kMma);
  if (smem > 48 * 1024) {
    const cudaError_t e = allow_large_smem<T, kMma>();
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(static_cast<unsigned>(num_tokens / block_q + a.num_seqs),
                  static_cast<unsigned>(a.num_kv_heads), static_cast<unsigned>(splits.num_splits));
  paged_attention_kernel<T, kMma><<<grid, kThreads, smem, stream>>>(a, num_tokens, block_q, splits);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch(const PagedAttentionArgs& a, int num_tokens, int block_q,
                   const AttentionSplits& splits, cudaStream_t stream) {
  const int group = a.num_heads / a.num_kv_heads;
  cudaError_t e;
  if constexpr (!std::is_same_v<T, float>) {
    e = mma_eligible<T>(block_q * group, a.head_size)
            ? launch_variant<T, true>(a, num_tokens, block_q, splits, stream)
            : launch_variant<T, false>(a, num_tokens, block_q, splits, stream);
  } else {
    e = launch_variant<T, false>(a, num_tokens, block_q, splits, stream);
  }
  if (e != cudaSuccess || splits.num_splits == 1) return e;
  merge_splits_kernel<T>
      <<<dim3(static_cast<unsigned>(num_tokens), static_cast<unsigned>(a.num_heads)), kThreads, 0,
         stream>>>(a, num_tokens, splits);
  return cudaGetLastError();
}

}  // namespace

int attention_block_q(int num_tokens, int num_seqs, int group) {
  if (num_tokens == num_seqs) return 1;  // decode batch: one token per sequence
  return group >= kPrefillRows ? 1 : kPrefillRows / group;
}

size_t attention_smem_bytes(DType dtype, int block_q, int group, int head_size) {
  const int rows = block_q * group;
  switch (dtype) {
    case DType::kFloat32:
      return Smem<float>::bytes(rows, head_size, false);
    case DType::kBFloat16:
      return Smem<__nv_bfloat16>::bytes(rows, head_size,
                                        mma_eligible<__nv_bfloat16>(rows, head_size));
    case DType::kFloat16:
      return Smem<__half>::bytes(rows, head_size, mma_eligible<__half>(rows, head_size));
  }
  return 0;
}

cudaError_t paged_attention(DType dtype, const PagedAttentionArgs& args, int num_tokens,
                            int block_q, const AttentionSplits& splits, cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T,
                             [&] { return launch<T>(args, num_tokens, block_q, splits, stream); });
}

}  // namespace forge::cuda
