// llama.cpp's ggml matmul timed on given weights, for benchmarks/kernels/bench_quant_gemm.py:
// the peer kernel users know, on the same GGUF blocks, driven in rounds that alternate with
// ours. Built by the benchmark against the static libraries of benchmarks/.cache's llama.cpp
// build (never in CI); our own code, written against ggml.h and ggml-cpu.h.
//
//   ggml_matmul THREADS, then commands on stdin, one reply line each:
//     load TYPE N K M FILE   weights [N, K] of TYPE (q4_0, q4_1, q8_0) from FILE (raw GGUF
//                            blocks, N rows), x [M, K] fp32 random (llama.cpp's activations
//                            are fp32; ggml rounds them to its 8-bit vec_dot type inside
//                            the matmul, which is timed): replies "ok"
//     time MIN_SECONDS MAX_ITERS
//                            y = x W^T, two warm-up calls, then calls until MIN_SECONDS
//                            (at least 3, at most MAX_ITERS): replies the median seconds
//                            per call
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"

namespace {

struct Matmul {
  ggml_context* ctx = nullptr;
  ggml_cgraph* graph = nullptr;
  ggml_cplan plan{};
  std::vector<uint8_t> work;

  ~Matmul() {
    if (ctx) ggml_free(ctx);
  }
};

bool type_of(const std::string& name, ggml_type* type) {
  if (name == "q4_0") *type = GGML_TYPE_Q4_0;
  else if (name == "q4_1") *type = GGML_TYPE_Q4_1;
  else if (name == "q8_0") *type = GGML_TYPE_Q8_0;
  else return false;
  return true;
}

// The graph y = mul_mat(W, x) over W read from `file`; an error message or "".
std::string load(Matmul& mm, int threads, const std::string& type_name, int64_t n, int64_t k,
                 int64_t m, const std::string& file) {
  ggml_type type;
  if (!type_of(type_name, &type)) return "unknown type " + type_name;
  if (k % ggml_blck_size(type) != 0) return "K is not a multiple of the block";
  const size_t w_bytes = ggml_row_size(type, k) * n;
  const size_t bytes = w_bytes + sizeof(float) * (k * m + n * m) + 8 * ggml_tensor_overhead() +
                       ggml_graph_overhead() + 1024;
  if (mm.ctx) ggml_free(mm.ctx);
  mm.ctx = ggml_init({bytes, nullptr, false});
  if (!mm.ctx) return "ggml_init failed";
  ggml_tensor* w = ggml_new_tensor_2d(mm.ctx, type, k, n);
  ggml_tensor* x = ggml_new_tensor_2d(mm.ctx, GGML_TYPE_F32, k, m);
  FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) return "cannot open " + file;
  const size_t got = std::fread(w->data, 1, w_bytes, f);
  std::fclose(f);
  if (got != w_bytes) return "short weight file " + file;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  auto* xs = static_cast<float*>(x->data);
  for (int64_t i = 0; i < k * m; ++i) xs[i] = normal(rng);
  ggml_tensor* y = ggml_mul_mat(mm.ctx, w, x);
  mm.graph = ggml_new_graph(mm.ctx);
  ggml_build_forward_expand(mm.graph, y);
  mm.plan = ggml_graph_plan(mm.graph, threads, nullptr);
  mm.work.resize(mm.plan.work_size);
  mm.plan.work_data = mm.work.data();
  return "";
}

double median_seconds(Matmul& mm, double min_seconds, int max_iters) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 2; ++i) ggml_graph_compute(mm.graph, &mm.plan);
  std::vector<double> samples;
  const auto start = clock::now();
  while (samples.size() < 3 ||
         (std::chrono::duration<double>(clock::now() - start).count() < min_seconds &&
          static_cast<int>(samples.size()) < max_iters)) {
    const auto t0 = clock::now();
    ggml_graph_compute(mm.graph, &mm.plan);
    samples.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s THREADS (commands on stdin)\n", argv[0]);
    return 2;
  }
  const int threads = std::stoi(argv[1]);
  ggml_cpu_init();
  Matmul mm;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "load") {
      std::string type, file;
      int64_t n = 0, k = 0, m = 0;
      in >> type >> n >> k >> m >> file;
      const std::string error = load(mm, threads, type, n, k, m, file);
      std::printf("%s\n", error.empty() ? "ok" : ("error " + error).c_str());
    } else if (command == "time" && mm.graph) {
      double min_seconds = 0.1;
      int max_iters = 50;
      in >> min_seconds >> max_iters;
      std::printf("%.9g\n", median_seconds(mm, min_seconds, max_iters));
    } else {
      std::printf("error unknown command or nothing loaded: %s\n", line.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
