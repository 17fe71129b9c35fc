// The layout of a CUDA IPC all-reduce buffer and the peers a rank sees; torch-free.
// A buffer: [signal area, kIpcDataOffset bytes][input copy, data_bytes][reduced share
// (two-shot), data_bytes].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/kernels/launch.h"

namespace forge::cuda {

constexpr int kIpcMaxRanks = 8;
constexpr int kIpcMaxBlocks = 64;

// 64-bit flags: epoch * 4 + phase never wraps (a 32-bit one would after 2^30 calls, and
// then every barrier would pass at once).
struct IpcSignal {
  uint64_t flags[kIpcMaxBlocks][kIpcMaxRanks];  // [block][from rank]
};

constexpr int64_t kIpcDataOffset = (sizeof(IpcSignal) + 255) / 256 * 256;

struct IpcPeers {
  char* buffers[kIpcMaxRanks];  // every rank's buffer, mapped in this process
  int rank;
  int world_size;
  int64_t data_bytes;  // the most bytes one call may reduce
};

// Sums `bytes` (a multiple of 16, at most data_bytes) of `input` over the ranks into `out`.
// `epoch` must grow by one per call, identically on every rank. input and out: 16-byte
// aligned.
cudaError_t ipc_all_reduce(DType dtype, const IpcPeers& peers, const void* input, void* out,
                           int64_t bytes, uint64_t epoch, bool two_shot, cudaStream_t stream);

}  // namespace forge::cuda
