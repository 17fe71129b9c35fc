// A group of local ranks that exchange data through one POSIX shared-memory segment:
// the transport of the CPU collectives (all_reduce, all_gather, reduce_scatter).
// Torch-free; csrc/cpu/shm_collectives.cpp owns the torch side.
//
// Segment: a header (magic, job token, per-rank state on its own cache line), then two
// data buffers (double buffering), each with one slot of `slot_bytes` per rank. A
// collective moves its data in steps of at most one slot; step s uses buffer s % 2:
//   1. wait until every rank has published s - 1 (so all finished reading step s - 2,
//      the last user of this buffer), 2. write my slot and describe the call,
//   3. publish s, 4. wait until every rank published s, 5. check that every rank
//      describes the same call, 6. read the slots, reducing in rank order.
// The call descriptions are double-buffered like the data.
// Waiting spins, then sleeps; it fails after `timeout_s` naming the ranks that did not
// arrive, and at once when one of them has died (its pid is gone).
//
// Names: /forge-<job token>-<group>, created O_EXCL with mode 0600 by rank 0 (a leftover
// of a dead job with the same name is refused, never joined: the token is new per job).
// Rank 0 unlinks the name as soon as every rank has mapped the segment, so nothing stays
// in /dev/shm after the job, however it ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace forge::shm {

constexpr int kMaxRanks = 16;

// What a rank says it is doing in a step; all ranks must agree.
struct CallDesc {
  int32_t kind;   // Op
  int32_t dtype;  // caller's dtype code
  int64_t numel;  // elements of the whole call (per rank input)
  int64_t step;   // step index within the call
};

enum class Op : int32_t { kAllReduce = 1, kAllGather = 2, kReduceScatter = 3 };

// Thrown for every failure (timeout, dead rank, mismatch, bad segment); the message says
// what happened. After a failure the group is broken: every later call fails.
struct ShmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ShmGroup {
 public:
  // Creates (rank 0) or attaches (others) and waits until all ranks are attached.
  ShmGroup(const std::string& group, uint64_t token, int rank, int world_size, int64_t slot_bytes,
           double timeout_s);
  ~ShmGroup();
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  const std::string& name() const { return name_; }

  // Steps 1-5 above: returns the data buffer of this step (slot r at r * slot_bytes);
  // `write` fills my slot (called between steps 1 and 3).
  template <typename Write>
  char* exchange(const CallDesc& desc, Write&& write) {
    char* buffer = begin_step();
    write(buffer + rank_ * slot_bytes_);
    return finish_step(desc);
  }

 private:
  void attach(uint64_t token, std::chrono::steady_clock::time_point deadline);
  char* begin_step();
  char* finish_step(const CallDesc& desc);
  void wait_all_published(uint64_t step, const char* what);
  [[noreturn]] void fail(const std::string& message);

  std::string name_;
  int rank_;
  int world_size_;
  int64_t slot_bytes_;
  double timeout_s_;
  size_t map_bytes_ = 0;
  void* map_ = nullptr;
  uint64_t step_ = 0;  // the last step this rank published
  bool broken_ = false;
  std::string broken_reason_;
};

}  // namespace forge::shm
