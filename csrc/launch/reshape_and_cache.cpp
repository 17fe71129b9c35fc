// reshape_and_cache's checks and arguments, for every device: shapes, dtypes, strides and,
// for CPU tensors, every slot index. The caches may have any strides (paged_attention
// wants keys transposed per block).
#include "common/checks.h"
#include "launch/prepare.h"

namespace forge {

std::optional<ReshapeAndCacheArgs> prepare_reshape_and_cache(at::Tensor& key_cache,
                                                             at::Tensor& value_cache,
                                                             const at::Tensor& key,
                                                             const at::Tensor& value,
                                                             const at::Tensor& slot_mapping) {
  FORGE_CHECK_DIM("reshape_and_cache", key_cache, 4);
  FORGE_CHECK_DIM("reshape_and_cache", value_cache, 4);
  FORGE_CHECK_DIM("reshape_and_cache", key, 3);
  FORGE_CHECK_DIM("reshape_and_cache", value, 3);
  FORGE_CHECK_DIM("reshape_and_cache", slot_mapping, 1);

  FORGE_CHECK_SAME_DEVICE("reshape_and_cache", key_cache, key);
  FORGE_CHECK_SAME_DEVICE("reshape_and_cache", value_cache, key);
  FORGE_CHECK_SAME_DEVICE("reshape_and_cache", value, key);
  FORGE_CHECK_SAME_DEVICE("reshape_and_cache", slot_mapping, key);

  FORGE_CHECK_FLOATING("reshape_and_cache", key);
  FORGE_CHECK_SAME_DTYPE("reshape_and_cache", value, key);
  FORGE_CHECK_SAME_DTYPE("reshape_and_cache", key_cache, key);
  FORGE_CHECK_SAME_DTYPE("reshape_and_cache", value_cache, key);
  FORGE_CHECK_DTYPE("reshape_and_cache", slot_mapping, at::kLong);

  const int64_t num_tokens = key.size(0);
  const int64_t num_kv_heads = key.size(1);
  const int64_t head_size = key.size(2);
  const int64_t num_blocks = key_cache.size(0);
  const int64_t block_size = key_cache.size(2);

  TORCH_CHECK(value.sizes() == key.sizes(), "reshape_and_cache: value must have the shape of key ",
              shape_string(key), ", got ", shape_string(value));
  TORCH_CHECK(value_cache.sizes() == key_cache.sizes(),
              "reshape_and_cache: value_cache must have the shape of key_cache ",
              shape_string(key_cache), ", got ", shape_string(value_cache));
  FORGE_CHECK_SIZE("reshape_and_cache", key_cache, 1, num_kv_heads);
  FORGE_CHECK_SIZE("reshape_and_cache", key_cache, 3, head_size);
  FORGE_CHECK_SIZE("reshape_and_cache", slot_mapping, 0, num_tokens);

  FORGE_CHECK_LAST_DIM_CONTIGUOUS("reshape_and_cache", key);
  FORGE_CHECK_LAST_DIM_CONTIGUOUS("reshape_and_cache", value);
  FORGE_CHECK_CONTIGUOUS("reshape_and_cache", slot_mapping);

  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  // Reading the slots of a GPU tensor would cost a device sync per call.
  if (key.is_cpu()) {
    const int64_t num_slots = num_blocks * block_size;
    for (int64_t i = 0; i < num_tokens; ++i) {
      TORCH_CHECK(slots[i] < num_slots, "reshape_and_cache: slot_mapping[", i, "] = ", slots[i],
                  " is out of range for a cache of ", num_blocks, " blocks of ", block_size,
                  " slots (negative slots are skipped)");
    }
  }
  if (num_tokens == 0) return std::nullopt;

  ReshapeAndCacheArgs args{};
  args.key_cache = key_cache.data_ptr();
  args.kc_stride_block = key_cache.stride(0);
  args.kc_stride_head = key_cache.stride(1);
  args.kc_stride_slot = key_cache.stride(2);
  args.kc_stride_dim = key_cache.stride(3);
  args.value_cache = value_cache.data_ptr();
  args.vc_stride_block = value_cache.stride(0);
  args.vc_stride_head = value_cache.stride(1);
  args.vc_stride_slot = value_cache.stride(2);
  args.vc_stride_dim = value_cache.stride(3);
  args.key = key.data_ptr();
  args.k_stride_token = key.stride(0);
  args.k_stride_head = key.stride(1);
  args.value = value.data_ptr();
  args.v_stride_token = value.stride(0);
  args.v_stride_head = value.stride(1);
  args.slot_mapping = slots;
  args.num_tokens = num_tokens;
  args.num_kv_heads = static_cast<int>(num_kv_heads);
  args.head_size = static_cast<int>(head_size);
  args.block_size = static_cast<int>(block_size);
  args.element_size = static_cast<int>(key.element_size());
  return args;
}

}  // namespace forge
