// Every op schema, once. Outputs come first and are marked Tensor!; ops return ()
// unless they allocate. Device files only add TORCH_LIBRARY_IMPL blocks.
#include <torch/library.h>

TORCH_LIBRARY(vllm_forge, m) {
  // Write new K/V rows into the paged cache; slot_mapping[i] < 0 skips token i.
  m.def(
      "reshape_and_cache(Tensor! key_cache, Tensor! value_cache, Tensor key, Tensor value, "
      "Tensor slot_mapping) -> ()");

  // Causal varlen attention over a paged KV cache for a mixed batch of decodes,
  // prefills and chunked prefills. sliding_window <= 0 and softcap <= 0 disable them.
  m.def(
      "paged_attention(Tensor! out, Tensor query, Tensor key_cache, Tensor value_cache, "
      "Tensor query_start_loc, Tensor seq_lens, Tensor block_table, float scale, "
      "int sliding_window, float softcap) -> ()");
}
