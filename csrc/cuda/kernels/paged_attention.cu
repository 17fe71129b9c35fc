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
// Not yet: tensor cores (mma/wgmma) for prefill; this version uses FMA.
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
    if (a.query_start_loc[mid] / block_q + mid <= q_block) lo = mid; else hi = mid - 1;
  }
  item.seq = lo;
  item.q_start = a.query_start_loc[lo];
  item.q_len = a.query_start_loc[lo + 1] - item.q_start;
  item.first_tok = (q_block - (item.q_start / block_q + lo)) * block_q;
  item.seq_len = a.seq_lens[lo];
  return item.first_tok < item.q_len;
}

// Shared memory layout, in floats then T: q [R][D], acc [R][D], scores [R][kTile],
// m, l, alpha [R], then keys [kTile][D + pad] and values [kTile][D] in T.
template <typename T>
struct Smem {
  static constexpr int kPad = 4 / sizeof(T) > 0 ? 4 / sizeof(T) : 1;  // one 32-bit word
  __host__ __device__ static size_t floats(int rows, int d) { return 2 * rows * d + rows * kTile + 3 * rows; }
  static size_t bytes(int rows, int d) {
    const size_t f = (floats(rows, d) * sizeof(float) + 15) / 16 * 16;
    return f + kTile * (d + kPad) * sizeof(T) + kTile * d * sizeof(T);
  }
};

template <typename T>
__device__ __forceinline__ void load_tile(T* dst, int dst_stride, const T* cache,
                                          int64_t stride_block, int64_t stride_slot,
                                          int64_t stride_dim, const int32_t* blocks, int lo,
                                          int hi, int block_size, int d) {
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

template <typename T>
__global__ void paged_attention_kernel(PagedAttentionArgs a, int num_tokens, int block_q,
                                       AttentionSplits splits) {
  Item it;
  if (!find_item(a, block_q, it)) return;
  const int group = a.num_heads / a.num_kv_heads;
  const int rows = block_q * group;
  const int d = a.head_size;
  const int kv_head = blockIdx.y, split = blockIdx.z;
  const int context = it.seq_len - it.q_len;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* q_s = reinterpret_cast<float*>(smem_raw);
  float* acc_s = q_s + rows * d;
  float* s_s = acc_s + rows * d;
  float* m_s = s_s + rows * kTile;
  float* l_s = m_s + rows;
  float* alpha_s = l_s + rows;
  const size_t float_bytes = (Smem<T>::floats(rows, d) * sizeof(float) + 15) / 16 * 16;
  T* k_s = reinterpret_cast<T*>(smem_raw + float_bytes);
  const int k_stride = d + Smem<T>::kPad;
  T* v_s = k_s + kTile * k_stride;

  // Row r: token first_tok + r / group of the sequence, head kv_head * group + r % group.
  const T* query = static_cast<const T*>(a.query);
  for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
    const int r = i / d, c = i % d;
    const int tok = it.first_tok + r / group;
    float x = 0.f;
    if (tok < it.q_len) {
      const int64_t token = it.q_start + tok;
      x = to_float(query[token * a.q_stride_token + (kv_head * group + r % group) * a.q_stride_head + c]);
    }
    q_s[i] = x;
    acc_s[i] = 0.f;
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
    load_tile(k_s, k_stride, kc, a.k_stride_block, a.k_stride_slot, a.k_stride_dim, blocks,
              start, hi, a.block_size, d);
    load_tile(v_s, d, vc, a.v_stride_block, a.v_stride_slot, a.v_stride_dim, blocks, start, hi,
              a.block_size, d);
    __syncthreads();
    // Scores: thread per (row, key); a warp shares one row, so q reads broadcast.
    for (int i = threadIdx.x; i < rows * kTile; i += blockDim.x) {
      const int r = i / kTile, t = i % kTile;
      const float* q = q_s + r * d;
      const T* k = k_s + t * k_stride;
      float s = 0.f;
      for (int c = 0; c < d; ++c) s += q[c] * to_float(k[c]);
      s *= a.scale;
      if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
      const int pos = context + it.first_tok + r / group;
      const int kpos = start + t;
      bool ok = kpos < hi && kpos <= pos;
      if (a.sliding_window > 0) ok = ok && kpos > pos - a.sliding_window;
      s_s[i] = ok ? s : -INFINITY;
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
      s_s[r * kTile + lane] = p;
      if (lane == 0) {
        const float alpha = __expf(m_old - m_safe);
        alpha_s[r] = alpha;
        l_s[r] = l_s[r] * alpha + sum;
        m_s[r] = m_new;
      }
    }
    __syncthreads();
    // acc = acc * alpha + P V: thread per (row, dim).
    for (int i = threadIdx.x; i < rows * d; i += blockDim.x) {
      const int r = i / d, c = i % d;
      const float* p = s_s + r * kTile;
      float x = acc_s[i] * alpha_s[r];
      for (int t = 0; t < kTile; ++t) x += p[t] * to_float(v_s[t * d + c]);
      acc_s[i] = x;
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

template <typename T>
cudaError_t launch(const PagedAttentionArgs& a, int num_tokens, int block_q,
                   const AttentionSplits& splits, cudaStream_t stream) {
  const int group = a.num_heads / a.num_kv_heads;
  const size_t smem = Smem<T>::bytes(block_q * group, a.head_size);
  if (smem > 48 * 1024) {
    // Raise the kernel's dynamic shared-memory limit once per device, to what it allows
    // (the launcher checked that `smem` fits).
    static int raised[64] = {};
    int device = 0, limit = 0;
    cudaError_t e = cudaGetDevice(&device);
    if (e == cudaSuccess && device < 64 && !raised[device]) {
      e = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
      if (e == cudaSuccess) {
        e = cudaFuncSetAttribute(paged_attention_kernel<T>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
      }
      raised[device] = e == cudaSuccess;
    }
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(static_cast<unsigned>(num_tokens / block_q + a.num_seqs),
                  static_cast<unsigned>(a.num_kv_heads), static_cast<unsigned>(splits.num_splits));
  paged_attention_kernel<T><<<grid, kThreads, smem, stream>>>(a, num_tokens, block_q, splits);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || splits.num_splits == 1) return e;
  merge_splits_kernel<T><<<dim3(static_cast<unsigned>(num_tokens),
                                static_cast<unsigned>(a.num_heads)), kThreads, 0, stream>>>(
      a, num_tokens, splits);
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
    case DType::kFloat32: return Smem<float>::bytes(rows, head_size);
    case DType::kBFloat16: return Smem<__nv_bfloat16>::bytes(rows, head_size);
    case DType::kFloat16: return Smem<__half>::bytes(rows, head_size);
  }
  return 0;
}

cudaError_t paged_attention(DType dtype, const PagedAttentionArgs& args, int num_tokens,
                            int block_q, const AttentionSplits& splits, cudaStream_t stream) {
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    return launch<T>(args, num_tokens, block_q, splits, stream);
  });
}

}  // namespace forge::cuda
