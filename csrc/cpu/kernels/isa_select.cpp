// Runtime choice among the per-ISA kernel tables (see kernel_table.h).
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/kernels/kernel_table.h"

namespace forge::cpu {

// Defined by the per-ISA compiles of kernel_table.cpp that this build has.
const KernelTable* kernel_table_baseline();
#ifdef FORGE_HAVE_AVX2
const KernelTable* kernel_table_avx2();
#endif
#ifdef FORGE_HAVE_AVX512
const KernelTable* kernel_table_avx512();
#endif
#ifdef FORGE_HAVE_AVX512BF16
const KernelTable* kernel_table_avx512bf16();
#endif

namespace {

struct Candidate {
  const char* name;
  const KernelTable* (*table)();
  bool supported;
};

// Best first.
std::vector<Candidate> candidates() {
  std::vector<Candidate> out;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#ifdef FORGE_HAVE_AVX512BF16
  out.push_back(
      {"avx512bf16", &kernel_table_avx512bf16,
       avx512 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni")});
#endif
#ifdef FORGE_HAVE_AVX512
  out.push_back({"avx512", &kernel_table_avx512, avx512});
#endif
#ifdef FORGE_HAVE_AVX2
  out.push_back({"avx2", &kernel_table_avx2,
                 __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     __builtin_cpu_supports("f16c")});
#endif
  out.push_back({"baseline", &kernel_table_baseline, true});
  return out;
}

const KernelTable& choose() {
  const char* forced = std::getenv("FORGE_CPU_ISA");
  std::string valid;
  for (const Candidate& c : candidates()) {
    if (forced == nullptr || *forced == '\0') {
      if (c.supported) return *c.table();
    } else if (c.name == std::string(forced)) {
      if (!c.supported)
        throw std::runtime_error(std::string("FORGE_CPU_ISA=") + forced +
                                 ": this CPU does not support it; available: " + available_isas());
      return *c.table();
    }
    valid += valid.empty() ? c.name : std::string(", ") + c.name;
  }
  throw std::runtime_error(std::string("FORGE_CPU_ISA=") + forced +
                           " is not an instruction set of this build; valid: " + valid);
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& table = choose();
  return table;
}

const char* available_isas() {
  static const std::string names = [] {
    std::string s;
    for (const Candidate& c : candidates())
      if (c.supported) s += s.empty() ? c.name : std::string(",") + c.name;
    return s;
  }();
  return names.c_str();
}

}  // namespace forge::cpu

// For `python -m vllm_forge.info` (through ctypes; no Python API needed): the kernel
// variant in use, or the error that choosing one raised.
extern "C" const char* forge_cpu_kernel_isa() {
  static std::string answer;
  try {
    answer = forge::cpu::kernels().isa;
  } catch (const std::exception& e) {
    answer = std::string("error: ") + e.what();
  }
  return answer.c_str();
}

extern "C" const char* forge_cpu_available_isas() { return forge::cpu::available_isas(); }
