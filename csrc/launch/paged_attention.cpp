// paged_attention's checks and arguments, for every device: dtypes, shapes, strides and,
// for CPU tensors, the contents of the metadata against the cache.
#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {
namespace {

constexpr const char* kOp = "paged_attention";

// The kernel trusts the metadata; a bad index must be an error, not a wild read.
void check_metadata(const at::Tensor& query_start_loc, const at::Tensor& seq_lens,
                    const at::Tensor& block_table, int64_t num_tokens, int64_t block_size,
                    int64_t num_blocks) {
  const int64_t num_seqs = seq_lens.size(0);
  const int32_t* qsl = query_start_loc.data_ptr<int32_t>();
  const int32_t* lens = seq_lens.data_ptr<int32_t>();
  const int32_t* table = block_table.data_ptr<int32_t>();
  const int64_t table_stride = block_table.stride(0);
  const int64_t max_blocks = block_table.size(1);

  TORCH_CHECK(qsl[0] == 0, kOp, ": query_start_loc[0] must be 0, got ", qsl[0]);
  TORCH_CHECK(qsl[num_seqs] == num_tokens, kOp, ": query_start_loc[", num_seqs,
              "] must equal the number of query tokens (", num_tokens, "), got ", qsl[num_seqs]);
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = static_cast<int64_t>(qsl[s + 1]) - qsl[s];
    TORCH_CHECK(q_len >= 0, kOp, ": query_start_loc must be non-decreasing, got ",
                "query_start_loc[", s, "] = ", qsl[s], " > query_start_loc[", s + 1,
                "] = ", qsl[s + 1]);
    TORCH_CHECK(lens[s] >= q_len, kOp, ": seq_lens[", s, "] = ", lens[s],
                " is shorter than the sequence's ", q_len,
                " query tokens (seq_lens counts context plus new tokens)");
    const int64_t used_blocks = (static_cast<int64_t>(lens[s]) + block_size - 1) / block_size;
    TORCH_CHECK(used_blocks <= max_blocks, kOp, ": seq_lens[", s, "] = ", lens[s], " needs ",
                used_blocks, " blocks of ", block_size, " but block_table has only ", max_blocks,
                " columns");
    for (int64_t b = 0; b < used_blocks; ++b) {
      const int32_t id = table[s * table_stride + b];
      TORCH_CHECK(id >= 0 && id < num_blocks, kOp, ": block_table[", s, "][", b, "] = ", id,
                  " is out of range for a cache of ", num_blocks, " blocks");
    }
  }
}

}  // namespace

std::optional<PagedAttentionArgs> prepare_paged_attention(
    at::Tensor& out, const at::Tensor& query, const at::Tensor& key_cache,
    const at::Tensor& value_cache, const at::Tensor& query_start_loc, const at::Tensor& seq_lens,
    const at::Tensor& block_table, double scale, int64_t sliding_window, double softcap) {
  FORGE_CHECK_DIM(kOp, query, 3);
  FORGE_CHECK_DIM(kOp, out, 3);
  FORGE_CHECK_DIM(kOp, key_cache, 4);
  FORGE_CHECK_DIM(kOp, value_cache, 4);
  FORGE_CHECK_DIM(kOp, query_start_loc, 1);
  FORGE_CHECK_DIM(kOp, seq_lens, 1);
  FORGE_CHECK_DIM(kOp, block_table, 2);

  FORGE_CHECK_SAME_DEVICE(kOp, out, query);
  FORGE_CHECK_SAME_DEVICE(kOp, key_cache, query);
  FORGE_CHECK_SAME_DEVICE(kOp, value_cache, query);
  FORGE_CHECK_SAME_DEVICE(kOp, query_start_loc, query);
  FORGE_CHECK_SAME_DEVICE(kOp, seq_lens, query);
  FORGE_CHECK_SAME_DEVICE(kOp, block_table, query);

  FORGE_CHECK_SAME_DTYPE(kOp, out, query);
  FORGE_CHECK_SAME_DTYPE(kOp, key_cache, query);
  FORGE_CHECK_SAME_DTYPE(kOp, value_cache, query);
  FORGE_CHECK_DTYPE(kOp, query_start_loc, at::kInt);
  FORGE_CHECK_DTYPE(kOp, seq_lens, at::kInt);
  FORGE_CHECK_DTYPE(kOp, block_table, at::kInt);

  const int64_t num_tokens = query.size(0);
  const int64_t num_heads = query.size(1);
  const int64_t head_size = query.size(2);
  const int64_t num_blocks = key_cache.size(0);
  const int64_t num_kv_heads = key_cache.size(1);
  const int64_t block_size = key_cache.size(2);
  const int64_t num_seqs = seq_lens.size(0);

  TORCH_CHECK(out.sizes() == query.sizes(), "paged_attention: out must have the shape of query ",
              shape_string(query), ", got ", shape_string(out));
  TORCH_CHECK(value_cache.sizes() == key_cache.sizes(),
              "paged_attention: value_cache must have the shape of key_cache ",
              shape_string(key_cache), ", got ", shape_string(value_cache));
  FORGE_CHECK_SIZE(kOp, key_cache, 3, head_size);
  TORCH_CHECK(head_size % 16 == 0 && head_size >= 32 && head_size <= 256,
              "paged_attention: head_size (query.size(2)) must be a multiple of 16 in [32, 256], "
              "got ",
              head_size);
  TORCH_CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0,
              "paged_attention: the number of query heads (", num_heads,
              ") must be a multiple of the number of KV heads (key_cache.size(1) = ", num_kv_heads,
              ")");
  TORCH_CHECK(block_size > 0 && block_size % 16 == 0,
              "paged_attention: block size (key_cache.size(2)) must be a positive multiple of 16, "
              "got ",
              block_size);
  FORGE_CHECK_SIZE(kOp, query_start_loc, 0, num_seqs + 1);
  FORGE_CHECK_SIZE(kOp, block_table, 0, num_seqs);
  // A shape check, so it holds on every device: tokens need a sequence to belong to.
  TORCH_CHECK(num_seqs > 0 || num_tokens == 0, "paged_attention: ", num_tokens,
              " query tokens but no sequences (seq_lens is empty)");

  FORGE_CHECK_LAST_DIM_CONTIGUOUS(kOp, out);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(kOp, query);
  // Inside a (block, head): keys [head_size][block_size] (transposed), values
  // [block_size][head_size]; the kernel streams both with 16-lane loads.
  TORCH_CHECK(key_cache.stride(2) == 1 && key_cache.stride(3) == block_size,
              "paged_attention: key_cache must store each block's keys transposed (strides [..., "
              "..., 1, block_size = ",
              block_size,
              "], a transposed view of [num_blocks, "
              "num_kv_heads, head_size, block_size]), got strides ",
              key_cache.strides());
  TORCH_CHECK(value_cache.stride(3) == 1 && value_cache.stride(2) == head_size,
              "paged_attention: value_cache must have contiguous [block_size, head_size] tiles "
              "(strides [..., ..., ",
              head_size, ", 1]), got strides ", value_cache.strides());
  FORGE_CHECK_CONTIGUOUS(kOp, query_start_loc);
  FORGE_CHECK_CONTIGUOUS(kOp, seq_lens);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS(kOp, block_table);

  TORCH_CHECK(std::isfinite(scale) && scale > 0,
              "paged_attention: scale must be finite and > 0, got ", scale);
  TORCH_CHECK(std::isfinite(softcap) && softcap >= 0,
              "paged_attention: softcap must be finite and >= 0 (0 disables it), got ", softcap);
  TORCH_CHECK(sliding_window == -1 || sliding_window > 0,
              "paged_attention: sliding_window must be -1 (none) or > 0, got ", sliding_window);
  TORCH_CHECK(sliding_window <= INT32_MAX,
              "paged_attention: sliding_window too large: ", sliding_window);

  // Reading the metadata of a GPU tensor would cost a device sync per call.
  if (query.is_cpu()) {
    check_metadata(query_start_loc, seq_lens, block_table, num_tokens, block_size, num_blocks);
  }
  if (num_tokens == 0) return std::nullopt;

  PagedAttentionArgs args{};
  args.out = out.data_ptr();
  args.out_stride_token = out.stride(0);
  args.out_stride_head = out.stride(1);
  args.query = query.data_ptr();
  args.q_stride_token = query.stride(0);
  args.q_stride_head = query.stride(1);
  args.key_cache = key_cache.data_ptr();
  args.k_stride_block = key_cache.stride(0);
  args.k_stride_head = key_cache.stride(1);
  args.k_stride_slot = key_cache.stride(2);
  args.k_stride_dim = key_cache.stride(3);
  args.value_cache = value_cache.data_ptr();
  args.v_stride_block = value_cache.stride(0);
  args.v_stride_head = value_cache.stride(1);
  args.v_stride_slot = value_cache.stride(2);
  args.v_stride_dim = value_cache.stride(3);
  args.query_start_loc = query_start_loc.data_ptr<int32_t>();
  args.seq_lens = seq_lens.data_ptr<int32_t>();
  args.block_table = block_table.data_ptr<int32_t>();
  args.block_table_stride = block_table.stride(0);
  args.num_seqs = static_cast<int>(num_seqs);
  args.num_heads = static_cast<int>(num_heads);
  args.num_kv_heads = static_cast<int>(num_kv_heads);
  args.head_size = static_cast<int>(head_size);
  args.block_size = static_cast<int>(block_size);
  args.scale = static_cast<float>(scale);
  args.sliding_window = static_cast<int>(sliding_window);
  args.softcap = static_cast<float>(softcap);
  return args;
}

}  // namespace forge
