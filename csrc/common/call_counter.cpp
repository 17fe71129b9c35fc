#include "common/call_counter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace forge {
namespace {

constexpr int kSlots = 64;
constexpr int kNameBytes = 48;
constexpr int kSlotBytes = 64;
constexpr size_t kTableBytes = kSlots * kSlotBytes;

// The table lives in a shared file mapping when a report folder is given, else in
// process memory. Either way it is created once and never freed (counters are static).
char* table() {
  static char* base = [] {
    const char* dir = std::getenv("FORGE_KERNEL_REPORT_DIR");
    if (dir != nullptr && *dir != '\0') {
      std::string path = std::string(dir) + "/native-" + std::to_string(getpid()) + ".counts";
      int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        void* p = MAP_FAILED;
        if (ftruncate(fd, kTableBytes) == 0)
          p = mmap(nullptr, kTableBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p != MAP_FAILED) return static_cast<char*>(p);
      }
    }
    static char local[kTableBytes];
    return local;
  }();
  return base;
}

std::mutex g_mutex;
int g_used = 0;
int64_t g_overflow = 0;  // ops beyond kSlots still count, just not in the report

}  // namespace

CallCounter::CallCounter(const char* op_name) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_used == kSlots) {
    count_ = &g_overflow;
    return;
  }
  char* slot = table() + g_used++ * kSlotBytes;
  std::strncpy(slot, op_name, kNameBytes - 1);
  count_ = reinterpret_cast<int64_t*>(slot + kNameBytes);
}

}  // namespace forge
