// Prompt log-probabilities from llama.cpp, for benchmarks/e2e/bench_int8_activations.py:
// the same token ids our runs score, through llama.cpp's own CPU path on the same GGUF.
//
//   llamacpp_logprobs MODEL.gguf THREADS < chunks.txt
//
// stdin: one chunk of token ids per line (space-separated). stdout: per chunk, one line
// with the log-probability of each token after the first, given the ones before it.
// Built by the benchmark against the static libraries of benchmarks/.cache's llama.cpp
// build (never in CI); our own code, written against llama.h.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf THREADS < chunks.txt\n", argv[0]);
    return 2;
  }
  const int threads = std::stoi(argv[2]);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<llama_token> ids;
    std::istringstream in(line);
    for (llama_token t; in >> t;) ids.push_back(t);
    if (ids.size() < 2) {
      std::printf("\n");
      continue;
    }
    // A fresh context per chunk: every chunk starts at position 0, as our runs' requests.
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = static_cast<uint32_t>(ids.size());
    cp.n_threads = cp.n_threads_batch = threads;
    llama_context* ctx = llama_init_from_model(model, cp);
    llama_batch batch = llama_batch_init(static_cast<int32_t>(ids.size()), 0, 1);
    for (size_t i = 0; i < ids.size(); ++i) {
      batch.token[i] = ids[i];
      batch.pos[i] = static_cast<llama_pos>(i);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    batch.n_tokens = static_cast<int32_t>(ids.size());
    if (llama_decode(ctx, batch) != 0) {
      std::fprintf(stderr, "llama_decode failed\n");
      return 1;
    }
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const float* logits = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
      double mx = logits[0];
      for (int v = 1; v < vocab; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
      double sum = 0;
      for (int v = 0; v < vocab; ++v) sum += std::exp(logits[v] - mx);
      std::printf("%s%.7f", i ? " " : "", logits[ids[i + 1]] - mx - std::log(sum));
    }
    std::printf("\n");
    std::fflush(stdout);
    llama_batch_free(batch);
    llama_free(ctx);
  }
  llama_model_free(model);
  return 0;
}
