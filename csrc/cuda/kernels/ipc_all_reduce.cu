// All-reduce among the GPUs (processes) of one node through CUDA IPC buffers: each rank
// maps every peer's buffer and reads it directly. Torch-free.
//
// Synchronisation is per block: block b of every rank handles the same elements, so a
// flag that block b of rank r raises in every peer's signal area, and waits for from every
// peer in its own, orders exactly the writes and reads that block b depends on. Flag
// values only grow (epoch * 4 + phase), so no flag is ever reset.
//
// one-shot: each rank copies its input into its buffer; barrier; each rank sums every
//   rank's buffer in rank order (fp32) into its output; barrier (buffers reusable).
// two-shot: as above, but rank r sums only its 1/world share, writes it to the second half
//   of its buffer; barrier; every rank gathers the shares. Half the reads per rank at
//   large sizes, one more barrier.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/ipc.h"

namespace forge::cuda {
namespace {

__device__ __forceinline__ void store_release(uint64_t* p, uint64_t v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ uint64_t load_acquire(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

// Every thread's earlier global writes are visible to the peers once this returns on
// every rank with the same `value`.
__device__ void block_barrier(const IpcPeers& p, uint64_t value) {
  __syncthreads();
  if (threadIdx.x < static_cast<unsigned>(p.world_size)) {
    __threadfence_system();
    IpcSignal* peer = reinterpret_cast<IpcSignal*>(p.buffers[threadIdx.x]);
    store_release(&peer->flags[blockIdx.x][p.rank], value);
    const IpcSignal* mine = reinterpret_cast<const IpcSignal*>(p.buffers[p.rank]);
    while (load_acquire(&mine->flags[blockIdx.x][threadIdx.x]) < value) {
    }
  }
  __syncthreads();
}

template <typename T>
__device__ __forceinline__ Pack<T> sum_packs(const IpcPeers& p, int64_t offset_bytes) {
  float acc[Pack<T>::kSize];
  for (int r = 0; r < p.world_size; ++r) {
    const Pack<T> x =
        load_pack(reinterpret_cast<const T*>(p.buffers[r] + kIpcDataOffset + offset_bytes));
    for (int j = 0; j < Pack<T>::kSize; ++j)
      acc[j] = r == 0 ? to_float(x.v[j]) : acc[j] + to_float(x.v[j]);
  }
  Pack<T> out;
  for (int j = 0; j < Pack<T>::kSize; ++j) out.v[j] = from_float<T>(acc[j]);
  return out;
}

template <typename T, bool TWO_SHOT>
__global__ void ipc_all_reduce_kernel(IpcPeers p, const T* input, T* out, int64_t packs,
                                      uint64_t epoch) {
  constexpr int N = Pack<T>::kSize;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  T* mine = reinterpret_cast<T*>(p.buffers[p.rank] + kIpcDataOffset);
  // Share r: packs [r * share, (r + 1) * share), the last one shorter (one-shot: one
  // share). Within a share, block b takes the same packs in every phase on every rank:
  // what the block barriers order.
  const int shares = TWO_SHOT ? p.world_size : 1;
  const int64_t share = (packs + shares - 1) / shares;
  for (int s = 0; s < shares; ++s) {
    const int64_t hi = min(packs, (s + 1) * share);
    for (int64_t i = s * share + first; i < hi; i += stride) {
      store_pack(mine + i * N, load_pack(input + i * N));
    }
  }
  block_barrier(p, epoch * 4 + 1);
  if constexpr (!TWO_SHOT) {
    for (int64_t i = first; i < packs; i += stride)
      store_pack(out + i * N, sum_packs<T>(p, i * 16));
  } else {
    const int64_t lo = p.rank * share, hi = min(packs, lo + share);
    T* reduced = reinterpret_cast<T*>(p.buffers[p.rank] + kIpcDataOffset + p.data_bytes);
    for (int64_t i = lo + first; i < hi; i += stride)
      store_pack(reduced + i * N, sum_packs<T>(p, i * 16));
    block_barrier(p, epoch * 4 + 2);
    for (int r = 0; r < p.world_size; ++r) {
      const T* theirs = reinterpret_cast<const T*>(p.buffers[r] + kIpcDataOffset + p.data_bytes);
      const int64_t rlo = r * share, rhi = min(packs, rlo + share);
      for (int64_t i = rlo + first; i < rhi; i += stride)
        store_pack(out + i * N, load_pack(theirs + i * N));
    }
  }
  block_barrier(p, epoch * 4 + 3);
}

}  // namespace

cudaError_t ipc_all_reduce(DType dtype, const IpcPeers& peers, const void* input, void* out,
                           int64_t bytes, uint64_t epoch, bool two_shot, cudaStream_t stream) {
  if (bytes % 16 != 0 || bytes > peers.data_bytes || reinterpret_cast<uintptr_t>(input) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(out) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t packs = bytes / 16;
  const int threads = 512;
  int blocks = static_cast<int>(std::min<int64_t>(kIpcMaxBlocks, (packs + threads - 1) / threads));
  blocks = std::max(blocks, 1);
  return FORGE_CUDA_DISPATCH(dtype, T, [&] {
    if (two_shot) {
      ipc_all_reduce_kernel<T, true><<<blocks, threads, 0, stream>>>(
          peers, static_cast<const T*>(input), static_cast<T*>(out), packs, epoch);
    } else {
      ipc_all_reduce_kernel<T, false><<<blocks, threads, 0, stream>>>(
          peers, static_cast<const T*>(input), static_cast<T*>(out), packs, epoch);
    }
    return cudaGetLastError();
  });
}

}  // namespace forge::cuda
