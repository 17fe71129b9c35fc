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
  // key_cache / value_cache: logical [num_blocks, num_kv_heads, block_size, head_size];
  // the CPU kernel wants keys transposed inside a block (key_cache strides
  // [.., .., 1, block_size], see python/vllm_forge/attention/kv_layout.py) and block_size
  // a multiple of 16.
  m.def(
      "paged_attention(Tensor! out, Tensor query, Tensor key_cache, Tensor value_cache, "
      "Tensor query_start_loc, Tensor seq_lens, Tensor block_table, float scale, "
      "int sliding_window, float softcap) -> ()");

  // out = input / sqrt(mean(input^2, -1) + epsilon) * weight, over the last dimension.
  m.def("rms_norm(Tensor! out, Tensor input, Tensor? weight, float epsilon) -> ()");

  // residual += input (rounded to the dtype); input = rms_norm(residual) (from the fp32 sum).
  m.def("fused_add_rms_norm(Tensor! input, Tensor! residual, Tensor? weight, float epsilon) -> ()");

  // out = silu(input[..., :d]) * input[..., d:], d = input.size(-1) / 2.
  m.def("silu_and_mul(Tensor! out, Tensor input) -> ()");

  // out = gelu(input[..., :d]) * input[..., d:]; approximate: 'none' (erf) or 'tanh'.
  m.def("gelu_and_mul(Tensor! out, Tensor input, str approximate) -> ()");

  // Rotate the first cos_sin_cache.size(1) dims of every head of query (and key) in place
  // by the angles of `positions`; neox (half-split) or gpt-j (interleaved) pairing.
  m.def(
      "rotary_embedding(Tensor positions, Tensor! query, Tensor!? key, int head_size, "
      "Tensor cos_sin_cache, bool is_neox) -> ()");

  // Row-wise softmax / log-softmax of input / temperature[row] (temperature optional).
  m.def("softmax(Tensor! out, Tensor input, Tensor? temperature) -> ()");
  m.def("log_softmax(Tensor! out, Tensor input, Tensor? temperature) -> ()");

  // MoE routing: softmax over experts, then the top k (k = topk_weights.size(1)),
  // optionally renormalised to sum to 1.
  m.def(
      "topk_softmax(Tensor! topk_weights, Tensor! topk_ids, Tensor gating_output, "
      "bool renormalize) -> ()");

  // Weight-only quantised matmul: out [M, N] = x [M, K] @ W^T (+ bias [N]), W [N, K] =
  // scales * codes + mins per group of group_size k, in the tiled form of
  // python/vllm_forge/quant/format.py: qweight int8 (bits 8) | uint8 (bits 4)
  // [ceil(N / 16), bytes per tile]; scales and mins float32 | float16 [ceil(N / 16),
  // ceil(K / group_size), 16]. fp32 math. quantize_x: x rounded to int8 per block of
  // min(32, group_size) k first (llama.cpp's Q8 activations), for int8 dot products.
  m.def(
      "quant_gemm(Tensor! out, Tensor x, Tensor qweight, Tensor scales, Tensor? mins, "
      "Tensor? bias, int bits, int group_size, bool quantize_x=False) -> ()");

  // Collectives among the local ranks of a group, over one POSIX shared-memory segment
  // (csrc/cpu/shm_collectives.cpp). A group is made once (the returned handle names it);
  // the segment /forge-<token>-<group> is unlinked as soon as every rank has mapped it.
  m.def(
      "shm_group_create(str group, int token, int rank, int world_size, int slot_bytes, "
      "float timeout_s) -> int");
  m.def("shm_group_destroy(int handle) -> ()");
  // Sum over the ranks, in place; fp32 accumulation in rank order on every rank.
  m.def("shm_all_reduce(int handle, Tensor! tensor) -> ()");
  // out = the inputs of ranks 0, 1, ... one after the other.
  m.def("shm_all_gather(int handle, Tensor! out, Tensor input) -> ()");
  // out = this rank's chunk (out.numel() elements) of the sum of the inputs.
  m.def("shm_reduce_scatter(int handle, Tensor! out, Tensor input) -> ()");

  // All-reduce among the GPUs of a node through CUDA IPC buffers (csrc/cuda/
  // ipc_all_reduce.cpp; CUDA builds only). A rank allocates a buffer (id), shares its
  // handle (64 bytes), opens the group with every rank's handle, then reduces: out = sum
  // of every rank's input in rank order (fp32 accumulation); two_shot: reduce-scatter
  // then all-gather, for larger tensors.
  m.def("ipc_buffer_alloc(int data_bytes) -> int");
  m.def("ipc_buffer_handle(int buffer) -> Tensor");
  m.def("ipc_group_open(int buffer, Tensor handles, int rank) -> ()");
  m.def("ipc_all_reduce(int buffer, Tensor! out, Tensor input, bool two_shot) -> ()");
  m.def("ipc_buffer_free(int buffer) -> ()");
}
