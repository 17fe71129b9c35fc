// CPU collectives over shared memory among the local ranks of a group (transport:
// cpu/shm/shm_group.h; reduction: the `sum` kernel of the CPU kernel table, fp32
// accumulation in rank order, so every rank gets bitwise the same result).
//
// A group is created once per communicator (shm_group_create returns an integer
// handle) and used by shm_all_reduce / shm_all_gather / shm_reduce_scatter; tensors
// must be contiguous CPU tensors. Every failure (a rank that died or stalled past the
// timeout, ranks disagreeing on the call) is a RuntimeError naming what happened.
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/call_counter.h"
#include "common/checks.h"
#include "common/dispatch.h"
#include "cpu/kernels/kernel_table.h"
#include "cpu/shm/shm_group.h"

namespace forge {
namespace {

std::mutex registry_mutex;
std::unordered_map<int64_t, std::shared_ptr<shm::ShmGroup>> registry;
int64_t next_handle = 1;

std::shared_ptr<shm::ShmGroup> group_of(const char* op, int64_t handle) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  const auto it = registry.find(handle);
  TORCH_CHECK(it != registry.end(), op, ": no shared-memory group with handle ", handle,
              " (destroyed, or never created in this process)");
  return it->second;
}

void check_tensor(const char* op, const char* name, const at::Tensor& t, bool float_only) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be on cpu, got ", t.device());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous, got strides ", t.strides());
  if (float_only) {
    TORCH_CHECK(float_dtype(t.scalar_type()).has_value(), op, ": ", name,
                " must have dtype float32, bfloat16 or float16, got ", t.scalar_type());
  }
}

// Runs `body`, turning a transport failure into a torch error.
template <typename F>
void guarded(F&& body) {
  try {
    body();
  } catch (const shm::ShmError& e) {
    TORCH_CHECK(false, e.what());
  }
}

// Calls step(offset, count, index) for consecutive pieces of at most per_step of numel
// elements; a call of zero elements still makes one (empty) step, so that the ranks meet
// and compare their calls.
template <typename F>
void for_each_step(int64_t numel, int64_t per_step, F&& step) {
  int64_t index = 0;
  do {
    const int64_t offset = index * per_step;
    step(offset, std::min(per_step, numel - offset), index);
    ++index;
  } while (index * per_step < numel);
}

using SumFn = void (*)(const SumArgs&);

SumFn sum_for(const char* op, at::ScalarType dtype) {
  return FORGE_DISPATCH_FLOAT_TYPES(op, dtype, scalar_t,
                                    [&] { return cpu::kernels().of<scalar_t>().sum; });
}

}  // namespace

int64_t shm_group_create(c10::string_view group, int64_t token, int64_t rank, int64_t world_size,
                         int64_t slot_bytes, double timeout_s) {
  TORCH_CHECK(timeout_s > 0, "shm_group_create: timeout_s must be > 0, got ", timeout_s);
  std::shared_ptr<shm::ShmGroup> g;
  guarded([&] {
    g = std::make_shared<shm::ShmGroup>(std::string(group), static_cast<uint64_t>(token),
                                        static_cast<int>(rank), static_cast<int>(world_size),
                                        slot_bytes, timeout_s);
  });
  const std::lock_guard<std::mutex> lock(registry_mutex);
  registry[next_handle] = std::move(g);
  return next_handle++;
}

void shm_group_destroy(int64_t handle) {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  registry.erase(handle);
}

void shm_all_reduce(int64_t handle, at::Tensor& tensor) {
  constexpr const char* kOp = "shm_all_reduce";
  check_tensor(kOp, "tensor", tensor, true);
  const auto g = group_of(kOp, handle);
  static CallCounter counter("shm_all_reduce");
  counter.add();
  const SumFn sum = sum_for(kOp, tensor.scalar_type());
  const int64_t elem = tensor.element_size();
  const int64_t per_step = g->slot_bytes() / elem;
  const int64_t numel = tensor.numel();
  char* data = static_cast<char*>(tensor.data_ptr());
  const void* srcs[shm::kMaxRanks];
  guarded([&] {
    for_each_step(numel, per_step, [&](int64_t off, int64_t n, int64_t step) {
      const shm::CallDesc desc{static_cast<int32_t>(shm::Op::kAllReduce),
                               static_cast<int32_t>(tensor.scalar_type()), numel, step};
      char* buffer =
          g->exchange(desc, [&](char* slot) { std::memcpy(slot, data + off * elem, n * elem); });
      // My own part is read from the tensor, which is in my cache, rather than from my
      // slot; the order of the sum (rank order) and so the result are unchanged.
      for (int r = 0; r < g->world_size(); ++r) srcs[r] = buffer + r * g->slot_bytes();
      srcs[g->rank()] = data + off * elem;
      sum(SumArgs{srcs, g->world_size(), data + off * elem, n});
    });
  });
}

void shm_all_gather(int64_t handle, at::Tensor& out, const at::Tensor& input) {
  constexpr const char* kOp = "shm_all_gather";
  check_tensor(kOp, "input", input, false);
  check_tensor(kOp, "out", out, false);
  FORGE_CHECK_SAME_DTYPE(kOp, out, input);
  const auto g = group_of(kOp, handle);
  TORCH_CHECK(out.numel() == input.numel() * g->world_size(), kOp, ": out must hold world_size (",
              g->world_size(), ") x input.numel() (", input.numel(), ") elements, got ",
              out.numel());
  static CallCounter counter("shm_all_gather");
  counter.add();
  const int64_t elem = input.element_size();
  const int64_t per_step = g->slot_bytes() / elem;
  const int64_t numel = input.numel();
  const char* in = static_cast<const char*>(input.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  guarded([&] {
    for_each_step(numel, per_step, [&](int64_t off, int64_t n, int64_t step) {
      const shm::CallDesc desc{static_cast<int32_t>(shm::Op::kAllGather),
                               static_cast<int32_t>(input.scalar_type()), numel, step};
      char* buffer =
          g->exchange(desc, [&](char* slot) { std::memcpy(slot, in + off * elem, n * elem); });
      for (int r = 0; r < g->world_size(); ++r) {
        std::memcpy(dst + (r * numel + off) * elem, buffer + r * g->slot_bytes(), n * elem);
      }
    });
  });
}

void shm_reduce_scatter(int64_t handle, at::Tensor& out, const at::Tensor& input) {
  constexpr const char* kOp = "shm_reduce_scatter";
  check_tensor(kOp, "input", input, true);
  check_tensor(kOp, "out", out, true);
  FORGE_CHECK_SAME_DTYPE(kOp, out, input);
  const auto g = group_of(kOp, handle);
  const int world = g->world_size();
  TORCH_CHECK(input.numel() == out.numel() * world, kOp, ": input must hold world_size (", world,
              ") x out.numel() (", out.numel(), ") elements, got ", input.numel());
  static CallCounter counter("shm_reduce_scatter");
  counter.add();
  const SumFn sum = sum_for(kOp, input.scalar_type());
  const int64_t elem = input.element_size();
  // A step carries `per_step` elements for every destination rank.
  const int64_t per_step = g->slot_bytes() / elem / world;
  TORCH_CHECK(per_step > 0, kOp, ": a slot of ", g->slot_bytes(),
              " bytes cannot hold one element "
              "per rank for ",
              world, " ranks");
  const int64_t n_out = out.numel();
  const char* in = static_cast<const char*>(input.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
  const void* srcs[shm::kMaxRanks];
  guarded([&] {
    for_each_step(n_out, per_step, [&](int64_t off, int64_t n, int64_t step) {
      const shm::CallDesc desc{static_cast<int32_t>(shm::Op::kReduceScatter),
                               static_cast<int32_t>(input.scalar_type()), input.numel(), step};
      // Part r of my slot is for rank r; my own part is read from the input directly.
      char* buffer = g->exchange(desc, [&](char* slot) {
        for (int r = 0; r < world; ++r) {
          if (r != g->rank())
            std::memcpy(slot + r * n * elem, in + (r * n_out + off) * elem, n * elem);
        }
      });
      for (int r = 0; r < world; ++r) srcs[r] = buffer + r * g->slot_bytes() + g->rank() * n * elem;
      srcs[g->rank()] = in + (g->rank() * n_out + off) * elem;
      sum(SumArgs{srcs, world, dst + off * elem, n});
    });
  });
}

TORCH_LIBRARY_IMPL(vllm_forge, CompositeExplicitAutograd, m) {
  m.impl("shm_group_create", &shm_group_create);
  m.impl("shm_group_destroy", &shm_group_destroy);
}

TORCH_LIBRARY_IMPL(vllm_forge, CPU, m) {
  m.impl("shm_all_reduce", &shm_all_reduce);
  m.impl("shm_all_gather", &shm_all_gather);
  m.impl("shm_reduce_scatter", &shm_reduce_scatter);
}

}  // namespace forge
