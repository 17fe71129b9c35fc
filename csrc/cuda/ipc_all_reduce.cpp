// CUDA IPC all-reduce: the buffers, their handles, and the launcher (kernel:
// cuda/kernels/ipc_all_reduce.cu). Per rank: ipc_buffer_alloc, then share
// ipc_buffer_handle with the group (any channel: vLLM's CPU group does it), then
// ipc_group_open with everybody's handles; ipc_all_reduce per call; ipc_buffer_free.
#include <torch/library.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/call_counter.h"
#include "common/checks.h"
#include "cuda/kernels/ipc.h"
#include "cuda/launch_utils.h"

namespace forge {
namespace {

struct IpcBuffer {
  int device = 0;
  char* local = nullptr;
  cuda::IpcPeers peers{};
  std::vector<char*> opened;  // peers' buffers mapped here
  uint64_t epoch = 0;
  bool open = false;
};

// What ipc_buffer_handle returns: the CUDA handle, then the buffer's data_bytes.
constexpr int64_t kHandleBytes = sizeof(cudaIpcMemHandle_t) + sizeof(int64_t);

std::mutex registry_mutex;
std::unordered_map<int64_t, std::shared_ptr<IpcBuffer>> registry;
int64_t next_id = 1;

std::shared_ptr<IpcBuffer> find(const char* op, int64_t id) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  const auto it = registry.find(id);
  TORCH_CHECK(it != registry.end(), op, ": no IPC buffer with id ", id);
  return it->second;
}

}  // namespace

int64_t ipc_buffer_alloc(int64_t data_bytes) {
  TORCH_CHECK(data_bytes > 0 && data_bytes % 16 == 0,
              "ipc_buffer_alloc: data_bytes must be a "
              "positive multiple of 16, got ",
              data_bytes);
  auto buffer = std::make_shared<IpcBuffer>();
  FORGE_CHECK_LAUNCH("ipc_buffer_alloc", cudaGetDevice(&buffer->device));
  const size_t total = cuda::kIpcDataOffset + 2 * static_cast<size_t>(data_bytes);
  FORGE_CHECK_LAUNCH("ipc_buffer_alloc",
                     cudaMalloc(reinterpret_cast<void**>(&buffer->local), total));
  // Flags start at 0 and only grow; cudaMemset completes before any kernel of this
  // process, and peers wait for our flags, never for our memset.
  FORGE_CHECK_LAUNCH("ipc_buffer_alloc", cudaMemset(buffer->local, 0, cuda::kIpcDataOffset));
  FORGE_CHECK_LAUNCH("ipc_buffer_alloc", cudaDeviceSynchronize());
  buffer->peers.data_bytes = data_bytes;
  const std::lock_guard<std::mutex> lock(registry_mutex);
  registry[next_id] = buffer;
  return next_id++;
}

at::Tensor ipc_buffer_handle(int64_t id) {
  const auto buffer = find("ipc_buffer_handle", id);
  cudaIpcMemHandle_t handle;
  FORGE_CHECK_LAUNCH("ipc_buffer_handle", cudaIpcGetMemHandle(&handle, buffer->local));
  at::Tensor out = at::empty({kHandleBytes}, at::kByte);
  std::memcpy(out.data_ptr(), &handle, sizeof handle);
  std::memcpy(static_cast<char*>(out.data_ptr()) + sizeof handle, &buffer->peers.data_bytes,
              sizeof(int64_t));
  return out;
}

// handles: every rank's ipc_buffer_handle, which also carries its data_bytes: ranks
// with different sizes would read past each other's buffers, so they are refused.
void ipc_group_open(int64_t id, const at::Tensor& handles, int64_t rank) {
  constexpr const char* kOp = "ipc_group_open";
  const auto buffer = find(kOp, id);
  TORCH_CHECK(!buffer->open, kOp, ": buffer ", id, " is already open");
  FORGE_CHECK_DIM(kOp, handles, 2);
  FORGE_CHECK_CPU(kOp, handles);
  FORGE_CHECK_DTYPE(kOp, handles, at::kByte);
  FORGE_CHECK_CONTIGUOUS(kOp, handles);
  const int64_t world = handles.size(0);
  TORCH_CHECK(handles.size(1) == kHandleBytes, kOp, ": handles must be [world_size, ", kHandleBytes,
              "], got ", shape_string(handles));
  TORCH_CHECK(world >= 1 && world <= cuda::kIpcMaxRanks, kOp, ": world size must be in [1, ",
              cuda::kIpcMaxRanks, "], got ", world);
  TORCH_CHECK(rank >= 0 && rank < world, kOp, ": rank ", rank, " outside [0, ", world, ")");
  const c10::cuda::CUDAGuard guard(buffer->device);
  for (int64_t r = 0; r < world; ++r) {
    if (r == rank) {
      buffer->peers.buffers[r] = buffer->local;
      continue;
    }
    cudaIpcMemHandle_t handle;
    int64_t their_bytes = 0;
    const char* row = static_cast<const char*>(handles[r].data_ptr());
    std::memcpy(&handle, row, sizeof handle);
    std::memcpy(&their_bytes, row + sizeof handle, sizeof their_bytes);
    TORCH_CHECK(their_bytes == buffer->peers.data_bytes, kOp, ": rank ", r, " has a ", their_bytes,
                "-byte buffer, rank ", rank, " ", buffer->peers.data_bytes,
                " (FORGE_IPC_MAX_BYTES must agree)");
    void* peer = nullptr;
    FORGE_CHECK_LAUNCH(kOp, cudaIpcOpenMemHandle(&peer, handle, cudaIpcMemLazyEnablePeerAccess));
    buffer->opened.push_back(static_cast<char*>(peer));
    buffer->peers.buffers[r] = static_cast<char*>(peer);
  }
  buffer->peers.rank = static_cast<int>(rank);
  buffer->peers.world_size = static_cast<int>(world);
  buffer->open = true;
}

void ipc_all_reduce(int64_t id, at::Tensor& out, const at::Tensor& input, bool two_shot) {
  constexpr const char* kOp = "ipc_all_reduce";
  const auto buffer = find(kOp, id);
  TORCH_CHECK(buffer->open, kOp, ": buffer ", id, " has no group yet (call ipc_group_open)");
  FORGE_CHECK_CUDA_TENSOR(kOp, input);
  TORCH_CHECK(input.device().index() == buffer->device, kOp, ": input is on ", input.device(),
              " but the buffer on cuda:", buffer->device);
  FORGE_CHECK_SAME_DEVICE(kOp, out, input);
  FORGE_CHECK_SAME_DTYPE(kOp, out, input);
  FORGE_CHECK_CONTIGUOUS(kOp, input);
  FORGE_CHECK_CONTIGUOUS(kOp, out);
  TORCH_CHECK(out.sizes() == input.sizes(), kOp, ": out must have the shape of input ",
              shape_string(input), ", got ", shape_string(out));
  const int64_t bytes = input.numel() * input.element_size();
  TORCH_CHECK(bytes % 16 == 0 && bytes <= buffer->peers.data_bytes, kOp,
              ": input must be a "
              "multiple of 16 bytes and at most ",
              buffer->peers.data_bytes, ", got ", bytes);
  // 16-byte accesses: a misaligned one would kill the context and leave the peers spinning.
  TORCH_CHECK(reinterpret_cast<uintptr_t>(input.data_ptr()) % 16 == 0 &&
                  reinterpret_cast<uintptr_t>(out.data_ptr()) % 16 == 0,
              kOp, ": input and out must be 16-byte aligned");
  if (bytes == 0) return;
  const c10::cuda::CUDAGuard guard(buffer->device);
  static CallCounter counter("ipc_all_reduce");
  counter.add();
  // Every rank makes the same calls in the same order, so the epochs agree.
  const uint64_t epoch = ++buffer->epoch;
  FORGE_CHECK_LAUNCH(kOp,
                     cuda::ipc_all_reduce(cuda::dtype_of(kOp, input.scalar_type()), buffer->peers,
                                          input.data_ptr(), out.data_ptr(), bytes, epoch, two_shot,
                                          cuda::current_stream(input)));
}

void ipc_buffer_free(int64_t id) {
  std::shared_ptr<IpcBuffer> buffer;
  {
    const std::lock_guard<std::mutex> lock(registry_mutex);
    const auto it = registry.find(id);
    if (it == registry.end()) return;
    buffer = it->second;
    registry.erase(it);
  }
  const c10::cuda::CUDAGuard guard(buffer->device);
  cudaDeviceSynchronize();  // no kernel may still read a peer's buffer
  for (char* peer : buffer->opened) cudaIpcCloseMemHandle(peer);
  cudaFree(buffer->local);
}

TORCH_LIBRARY_IMPL(vllm_forge, CompositeExplicitAutograd, m) {
  m.impl("ipc_buffer_alloc", &ipc_buffer_alloc);
  m.impl("ipc_buffer_handle", &ipc_buffer_handle);
  m.impl("ipc_buffer_free", &ipc_buffer_free);
}

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) { m.impl("ipc_group_open", &ipc_group_open); }

TORCH_LIBRARY_IMPL(vllm_forge, CUDA, m) { m.impl("ipc_all_reduce", &ipc_all_reduce); }

}  // namespace forge
