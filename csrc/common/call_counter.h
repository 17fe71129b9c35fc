// Cheap per-op call counting for the kernel report.
//
// Each launcher owns a `static forge::CallCounter counter("op");` and calls
// `counter.add()`: one relaxed atomic add per call. When FORGE_KERNEL_REPORT_DIR is set,
// the counters of a process live in the file <dir>/native-<pid>.counts, mapped shared,
// so the process that started vLLM can read what its engine and worker processes ran
// while they run, and after they are killed. Format (read by vllm_forge/report.py):
// 64 slots of 64 bytes: a NUL-padded op name (48 bytes), then a little-endian int64 count.
#pragma once

#include <cstdint>

namespace forge {

class CallCounter {
 public:
  explicit CallCounter(const char* op_name);
  void add() { __atomic_fetch_add(count_, 1, __ATOMIC_RELAXED); }

 private:
  int64_t* count_;
};

}  // namespace forge
