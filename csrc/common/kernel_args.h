// Arguments of every kernel (CPU and CUDA): raw pointers, sizes and strides (in elements),
// no torch. csrc/launch/<op>.cpp checks the tensors and fills them, for every device;
// kernels (csrc/cpu/kernels/<op>.h, csrc/cuda/kernels/<op>.cu) read them. The values behind the
// metadata pointers (query_start_loc, seq_lens, block_table, slot_mapping, positions,
// temperature) are checked only for CPU tensors: reading GPU ones would cost a sync.
#pragma once

#include <cstdint>

#include "common/row_layout.h"

namespace forge {

struct PagedAttentionArgs {
  void* out;  // [num_tokens, num_heads, head_size]
  int64_t out_stride_token;
  int64_t out_stride_head;
  const void* query;  // [num_tokens, num_heads, head_size]
  int64_t q_stride_token;
  int64_t q_stride_head;
  // The caches' logical [num_blocks, num_kv_heads, block_size, head_size] strides. The
  // layout checked today (kv_layout.py): keys transposed per (block, head), slot stride 1
  // and dim stride block_size; values row-major. The CPU kernel assumes it; the CUDA
  // kernel reads all four strides.
  const void* key_cache;
  int64_t k_stride_block;
  int64_t k_stride_head;
  int64_t k_stride_slot;
  int64_t k_stride_dim;
  const void* value_cache;
  int64_t v_stride_block;
  int64_t v_stride_head;
  int64_t v_stride_slot;
  int64_t v_stride_dim;
  const int32_t* query_start_loc;  // [num_seqs + 1]
  const int32_t* seq_lens;         // [num_seqs]
  const int32_t* block_table;      // [num_seqs, max_blocks_per_seq]
  int64_t block_table_stride;
  int num_seqs;
  int num_heads;
  int num_kv_heads;
  int head_size;
  int block_size;
  float scale;
  int sliding_window;  // <= 0: no window
  float softcap;       // <= 0: no soft-cap
};

struct ReshapeAndCacheArgs {
  void* key_cache;  // [num_blocks, num_kv_heads, block_size, head_size], any strides
  int64_t kc_stride_block;
  int64_t kc_stride_head;
  int64_t kc_stride_slot;
  int64_t kc_stride_dim;  // 1 for row-major tiles; block_size for transposed key tiles
  void* value_cache;      // [num_blocks, num_kv_heads, block_size, head_size], any strides
  int64_t vc_stride_block;
  int64_t vc_stride_head;
  int64_t vc_stride_slot;
  int64_t vc_stride_dim;
  const void* key;  // [num_tokens, num_kv_heads, head_size]
  int64_t k_stride_token;
  int64_t k_stride_head;
  const void* value;  // [num_tokens, num_kv_heads, head_size]
  int64_t v_stride_token;
  int64_t v_stride_head;
  const int64_t* slot_mapping;  // [num_tokens]
  int64_t num_tokens;
  int num_kv_heads;
  int head_size;
  int block_size;
  int element_size;  // bytes per element; all strides above are in elements
};

struct RmsNormArgs {
  void* out;  // [rows, hidden]
  RowLayout out_rows;
  void* input;  // [rows, hidden]; fused: updated in place with the output
  RowLayout in_rows;
  void* residual;  // fused only: [rows, hidden], updated in place with input + residual
  RowLayout res_rows;
  const void* weight;  // [hidden] or nullptr
  int64_t rows;
  int64_t hidden;
  float epsilon;
};

enum class Activation { kSilu, kGelu, kGeluTanh };

struct GatedActivationArgs {
  void* out;  // [rows, d]
  RowLayout out_rows;
  const void* input;  // [rows, 2 * d]
  RowLayout in_rows;
  int64_t rows;
  int64_t d;
};

struct RotaryArgs {
  const int64_t* positions;  // [num_tokens], in [0, max_position)
  void* query;               // [num_tokens, num_heads, head_size] (strided)
  int64_t q_stride_token;
  int64_t q_stride_head;
  int num_heads;
  void* key;  // [num_tokens, num_kv_heads, head_size] or nullptr
  int64_t k_stride_token;
  int64_t k_stride_head;
  int num_kv_heads;
  const void* cos_sin_cache;  // [max_position, rot_dim], same dtype as query
  int64_t cache_stride;
  int64_t num_tokens;
  int rot_dim;
  bool is_neox;
};

struct SoftmaxArgs {
  void* out;  // [rows, cols]
  int64_t out_stride;
  const void* input;  // [rows, cols]
  int64_t in_stride;
  const float* temperature;  // [rows] or nullptr
  int64_t rows;
  int64_t cols;
  bool log;
};

struct TopkSoftmaxArgs {
  float* topk_weights;  // [rows, k]
  int32_t* topk_ids;    // [rows, k]
  const void* gating;   // [rows, experts]
  int64_t gating_stride;
  int64_t rows;
  int experts;
  int k;
  bool renormalize;
};

// Weight-only quantised matmul: out = x @ W^T (+ bias), W [N, K] = scales * codes + mins
// per group of group_size k, in the tiled form of python/vllm_forge/quant/format.py:
// tiles of 16 output features, each a sequence of 64-byte chunks in which 32-bit lane l
// holds 4 k of feature 16 t + l (bits 8: k = 4 c + j in byte 64 c + 4 l + j; bits 4:
// k = 8 c + j in the low nibble of that byte and 8 c + 4 + j in its high nibble).
struct QuantGemmArgs {
  void* out;  // [M, N], x's dtype
  int64_t out_stride_row;
  const void* x;  // [M, K]
  int64_t x_stride_row;
  const uint8_t* qweight;  // [ceil(N / 16), ceil(K / 32) * 16 * bits * 4] bytes
  int64_t q_stride_tile;   // bytes
  const void* scales;      // [ceil(N / 16), num_groups, 16], float32 or float16, contiguous
  const void* mins;        // like scales, or nullptr
  bool scales_fp16;
  const void* bias;  // [N], x's dtype, or nullptr
  int64_t m;
  int64_t n;
  int64_t k;
  int bits;        // 4 or 8
  int group_size;  // 16, 32, 64, 128 or 256
  // x rounded to int8 per block of min(32, group_size) k first (llama.cpp's Q8
  // activations; python/vllm_forge/ops/reference.py: quantize_x_int8), for int8 dot
  // products. false: x as given.
  bool quantize_x;
};

// W^T [k, n_end - n_begin] for features [n_begin, n_end) of W above (n_begin a multiple
// of 16; dst_stride_row, a multiple of 16, >= the feature count rounded up to 16), as T.
struct QuantDequantArgs {
  const QuantGemmArgs* gemm;
  void* dst;  // [k][dst_stride_row]
  int64_t dst_stride_row;
  int64_t n_begin;
  int64_t n_end;
};

struct SumArgs {
  const void* const* srcs;  // num_srcs arrays of n elements, summed in this order
  int num_srcs;
  void* dst;  // n elements; may be one of srcs
  int64_t n;
};

}  // namespace forge
