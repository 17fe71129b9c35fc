// rotary_embedding's checks and arguments, for every device. query/key are
// [num_tokens, num_heads * head_size] or [num_tokens, num_heads, head_size], as vLLM
// passes them (often strided slices of one qkv tensor).
#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {
namespace {

struct HeadView {
  int64_t stride_token;
  int64_t stride_head;
  int num_heads;
};

HeadView check_heads(const char* name, const at::Tensor& t, const at::Tensor& query,
                     int64_t num_tokens, int64_t head_size) {
  TORCH_CHECK(t.scalar_type() == query.scalar_type(), "rotary_embedding: ", name,
              " must have the dtype of query (", query.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2 || t.dim() == 3, "rotary_embedding: ", name,
              " must be [num_tokens, heads * head_size] or [num_tokens, heads, head_size], got "
              "shape ",
              shape_string(t));
  TORCH_CHECK(t.size(0) == num_tokens, "rotary_embedding: ", name, ".size(0) must be ", num_tokens,
              " (positions.size(0)), got ", t.size(0));
  TORCH_CHECK(t.size(-1) <= 1 || t.stride(-1) == 1, "rotary_embedding: ", name,
              " must have a contiguous last dimension (stride 1), got strides ", t.strides());
  if (t.dim() == 2) {
    TORCH_CHECK(t.size(1) % head_size == 0, "rotary_embedding: ", name, ".size(1) = ", t.size(1),
                " is not a multiple of head_size = ", head_size);
    return {t.stride(0), head_size, static_cast<int>(t.size(1) / head_size)};
  }
  TORCH_CHECK(t.size(2) == head_size, "rotary_embedding: ", name,
              ".size(2) must be head_size = ", head_size, ", got ", t.size(2));
  return {t.stride(0), t.stride(1), static_cast<int>(t.size(1))};
}

}  // namespace

std::optional<RotaryArgs> prepare_rotary_embedding(const at::Tensor& positions, at::Tensor& query,
                                                   const std::optional<at::Tensor>& key_opt,
                                                   int64_t head_size,
                                                   const at::Tensor& cos_sin_cache, bool is_neox) {
  FORGE_CHECK_DIM("rotary_embedding", positions, 1);
  FORGE_CHECK_SAME_DEVICE("rotary_embedding", positions, query);
  FORGE_CHECK_DTYPE("rotary_embedding", positions, at::kLong);
  FORGE_CHECK_CONTIGUOUS("rotary_embedding", positions);
  FORGE_CHECK_FLOATING("rotary_embedding", query);
  TORCH_CHECK(head_size > 0, "rotary_embedding: head_size must be > 0, got ", head_size);
  FORGE_CHECK_DIM("rotary_embedding", cos_sin_cache, 2);
  FORGE_CHECK_SAME_DEVICE("rotary_embedding", cos_sin_cache, query);
  FORGE_CHECK_SAME_DTYPE("rotary_embedding", cos_sin_cache, query);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("rotary_embedding", cos_sin_cache);
  const int64_t rot_dim = cos_sin_cache.size(1);
  TORCH_CHECK(rot_dim > 0 && rot_dim % 2 == 0 && rot_dim <= head_size && rot_dim <= 1024,
              "rotary_embedding: rotary dim (cos_sin_cache.size(1)) must be even, in (0, "
              "head_size = ",
              head_size, "] and at most 1024, got ", rot_dim);

  const int64_t num_tokens = positions.size(0);
  const HeadView q = check_heads("query", query, query, num_tokens, head_size);
  HeadView k{0, 0, 0};
  if (key_opt.has_value()) {
    const at::Tensor& key = *key_opt;
    FORGE_CHECK_SAME_DEVICE("rotary_embedding", key, query);
    k = check_heads("key", key, query, num_tokens, head_size);
  }

  const int64_t* pos = positions.data_ptr<int64_t>();
  // Reading the positions of a GPU tensor would cost a device sync per call.
  if (query.is_cpu()) {
    const int64_t max_position = cos_sin_cache.size(0);
    for (int64_t t = 0; t < num_tokens; ++t) {
      TORCH_CHECK(pos[t] >= 0 && pos[t] < max_position, "rotary_embedding: positions[", t,
                  "] = ", pos[t], " is out of range for a cos_sin_cache of ", max_position,
                  " positions");
    }
  }
  if (num_tokens == 0) return std::nullopt;

  RotaryArgs args{};
  args.positions = pos;
  args.query = query.data_ptr();
  args.q_stride_token = q.stride_token;
  args.q_stride_head = q.stride_head;
  args.num_heads = q.num_heads;
  args.key = key_opt.has_value() ? key_opt->data_ptr() : nullptr;
  args.k_stride_token = k.stride_token;
  args.k_stride_head = k.stride_head;
  args.num_kv_heads = k.num_heads;
  args.cos_sin_cache = cos_sin_cache.data_ptr();
  args.cache_stride = cos_sin_cache.stride(0);
  args.num_tokens = num_tokens;
  args.rot_dim = static_cast<int>(rot_dim);
  args.is_neox = is_neox;
  return args;
}

}  // namespace forge
