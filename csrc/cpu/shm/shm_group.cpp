#include "cpu/shm/shm_group.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

namespace forge::shm {
namespace {

constexpr uint64_t kMagic = 0x3130'4d48'5346'5246ull;  // "FRFSHM01"

struct alignas(64) RankState {
  std::atomic<uint64_t> published;  // the last step this rank published
  std::atomic<int32_t> pid;         // 0 until attached
  int32_t pad;
  // The call of step s is in desc[s % 2]: a rank may describe step s + 1 while others
  // still compare step s, never step s + 2 (that waits for them).
  CallDesc desc[2];
};

struct Header {
  std::atomic<uint64_t> magic;  // written last by the creator
  uint64_t token;
  int32_t world_size;
  int32_t pad;
  int64_t slot_bytes;
  std::atomic<int32_t> attached;
  RankState ranks[kMaxRanks];
};

size_t data_offset() { return (sizeof(Header) + 4095) / 4096 * 4096; }

using Clock = std::chrono::steady_clock;

// Gone, or a zombie: a dead rank stays a zombie until its parent reaps it.
bool process_gone(int32_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (f == nullptr) return false;
  char state = 0;
  // "pid (comm) state ...": comm may hold spaces and parentheses, so find the last ')'.
  char line[512];
  if (fgets(line, sizeof line, f) != nullptr) {
    const char* close = strrchr(line, ')');
    if (close != nullptr && close[1] == ' ') state = close[2];
  }
  fclose(f);
  return state == 'Z' || state == 'X';
}

std::string sanitize(const std::string& group) {
  std::string out;
  for (char c : group) out += (isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '_';
  return out.substr(0, 150);
}

Header* header(void* map) { return static_cast<Header*>(map); }

}  // namespace

ShmGroup::ShmGroup(const std::string& group, uint64_t token, int rank, int world_size,
                   int64_t slot_bytes, double timeout_s)
    : rank_(rank), world_size_(world_size), slot_bytes_(slot_bytes), timeout_s_(timeout_s) {
  if (world_size < 1 || world_size > kMaxRanks) {
    throw ShmError("shm group: world_size must be in [1, " + std::to_string(kMaxRanks) + "], got " +
                   std::to_string(world_size));
  }
  if (rank < 0 || rank >= world_size) {
    throw ShmError("shm group: rank " + std::to_string(rank) + " outside [0, " +
                   std::to_string(world_size) + ")");
  }
  if (slot_bytes <= 0 || slot_bytes % 64 != 0) {
    throw ShmError("shm group: slot_bytes must be a positive multiple of 64, got " +
                   std::to_string(slot_bytes));
  }
  char token_hex[17];
  snprintf(token_hex, sizeof token_hex, "%016llx", static_cast<unsigned long long>(token));
  name_ = "/forge-" + std::string(token_hex) + "-" + sanitize(group);
  map_bytes_ = data_offset() + 2 * static_cast<size_t>(world_size) * slot_bytes;

  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s));
  int fd = -1;
  if (rank == 0) {
    fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
      throw ShmError(
          "shm group: cannot create " + name_ + ": " + strerror(errno) +
          (errno == EEXIST ? " (a segment of that name exists; it is never joined)" : ""));
    }
    if (ftruncate(fd, static_cast<off_t>(map_bytes_)) != 0) {
      const std::string why = strerror(errno);
      close(fd);
      shm_unlink(name_.c_str());
      throw ShmError("shm group: cannot size " + name_ + ": " + why);
    }
  } else {
    while ((fd = shm_open(name_.c_str(), O_RDWR, 0600)) < 0) {
      if (errno != ENOENT)
        throw ShmError("shm group: cannot open " + name_ + ": " + strerror(errno));
      if (Clock::now() > deadline) {
        throw ShmError("shm group: rank 0 did not create " + name_ + " within " +
                       std::to_string(timeout_s) + " s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    struct stat st{};
    // The creator may not have sized it yet.
    while (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) < map_bytes_) {
      if (Clock::now() > deadline) {
        close(fd);
        throw ShmError("shm group: " + name_ + " is " + std::to_string(st.st_size) +
                       " bytes, expected " + std::to_string(map_bytes_) +
                       " (ranks disagree on the buffer size?)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  map_ = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    if (rank == 0) shm_unlink(name_.c_str());
    throw ShmError("shm group: cannot map " + name_ + ": " + strerror(errno));
  }
  try {
    attach(token, deadline);
  } catch (...) {  // the destructor does not run for a constructor that throws
    munmap(map_, map_bytes_);
    map_ = nullptr;
    throw;
  }
}

void ShmGroup::attach(uint64_t token, std::chrono::steady_clock::time_point deadline) {
  const int rank = rank_, world_size = world_size_;
  const int64_t slot_bytes = slot_bytes_;
  const double timeout_s = timeout_s_;
  Header* h = header(map_);
  if (rank == 0) {
    h->token = token;
    h->world_size = world_size;
    h->slot_bytes = slot_bytes;
    h->magic.store(kMagic, std::memory_order_release);
  } else {
    while (h->magic.load(std::memory_order_acquire) != kMagic) {
      if (Clock::now() > deadline) fail("rank 0 never initialised " + name_);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (h->token != token || h->world_size != world_size || h->slot_bytes != slot_bytes) {
      fail("segment " + name_ + " belongs to another job or configuration (world size " +
           std::to_string(h->world_size) + ", slot bytes " + std::to_string(h->slot_bytes) + ")");
    }
  }
  h->ranks[rank].pid.store(static_cast<int32_t>(getpid()), std::memory_order_relaxed);
  h->attached.fetch_add(1, std::memory_order_acq_rel);
  while (h->attached.load(std::memory_order_acquire) < world_size) {
    if (Clock::now() > deadline) {
      std::ostringstream missing;
      for (int r = 0; r < world_size; ++r) {
        if (h->ranks[r].pid.load(std::memory_order_relaxed) == 0) missing << " " << r;
      }
      if (rank == 0) shm_unlink(name_.c_str());
      fail("ranks" + missing.str() + " did not attach to " + name_ + " within " +
           std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  // Everyone has it mapped: the name can go, so no segment outlives the job.
  if (rank == 0) shm_unlink(name_.c_str());
}

ShmGroup::~ShmGroup() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

void ShmGroup::fail(const std::string& message) {
  broken_ = true;
  broken_reason_ = message;
  throw ShmError("shm group " + name_ + " (rank " + std::to_string(rank_) + "): " + message);
}

void ShmGroup::wait_all_published(uint64_t step, const char* what) {
  Header* h = header(map_);
  const auto start = Clock::now();
  auto next_check = start;
  for (int64_t spins = 0;; ++spins) {
    bool all = true;
    for (int r = 0; r < world_size_ && all; ++r) {
      all = h->ranks[r].published.load(std::memory_order_acquire) >= step;
    }
    if (all) return;
    if (spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    const auto now = Clock::now();
    if (now >= next_check) {  // a dead rank fails at once; a stalled one after the timeout
      next_check = now + std::chrono::milliseconds(5);
      std::ostringstream late;
      bool dead = false;
      for (int r = 0; r < world_size_; ++r) {
        if (h->ranks[r].published.load(std::memory_order_acquire) >= step) continue;
        const int32_t pid = h->ranks[r].pid.load(std::memory_order_relaxed);
        late << " " << r << " (pid " << pid << (process_gone(pid) ? ", exited" : "") << ")";
        dead = dead || process_gone(pid);
      }
      const double waited = std::chrono::duration<double>(now - start).count();
      if (dead) fail(std::string("rank(s)") + late.str() + " died while " + what);
      if (waited > timeout_s_) {
        fail(std::string("timed out after ") + std::to_string(timeout_s_) + " s " + what +
             ": waiting for rank(s)" + late.str());
      }
    }
    if (spins < 20000) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

char* ShmGroup::begin_step() {
  if (broken_)
    throw ShmError("shm group " + name_ + " is broken by an earlier failure: " + broken_reason_);
  // Step s reuses the buffer of step s - 2: every rank must have finished reading it,
  // which it shows by having published s - 1.
  wait_all_published(step_, "waiting for the other ranks to finish the previous step");
  return static_cast<char*>(map_) + data_offset() +
         ((step_ + 1) % 2) * static_cast<size_t>(world_size_) * slot_bytes_;
}

char* ShmGroup::finish_step(const CallDesc& desc) {
  Header* h = header(map_);
  const uint64_t step = ++step_;
  h->ranks[rank_].desc[step % 2] = desc;
  h->ranks[rank_].published.store(step, std::memory_order_release);
  wait_all_published(step, "waiting for the other ranks' data");
  static const char* kNames[] = {"?", "all_reduce", "all_gather", "reduce_scatter"};
  for (int r = 0; r < world_size_; ++r) {
    const CallDesc& d = h->ranks[r].desc[step % 2];
    if (d.kind != desc.kind || d.dtype != desc.dtype || d.numel != desc.numel ||
        d.step != desc.step) {
      auto name = [&](int32_t k) { return (k >= 1 && k <= 3) ? kNames[k] : kNames[0]; };
      std::ostringstream os;
      os << "ranks disagree: rank " << rank_ << " called " << name(desc.kind) << " of "
         << desc.numel << " elements (dtype code " << desc.dtype << "), rank " << r << " called "
         << name(d.kind) << " of " << d.numel << " elements (dtype code " << d.dtype << ")";
      fail(os.str());
    }
  }
  return static_cast<char*>(map_) + data_offset() +
         (step % 2) * static_cast<size_t>(world_size_) * slot_bytes_;
}

}  // namespace forge::shm
