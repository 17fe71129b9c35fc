// Argument checks for the prepare functions (csrc/launch/) and device launchers. Every
// message names the op, the argument and the offending value, so a user can tell what to
// fix without reading our source. `op` may be a literal or a runtime const char* (checks
// shared by several ops pass theirs).
#pragma once

#include <torch/types.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <vector>

#include "common/dtype.h"
#include "common/row_layout.h"

namespace forge {

inline std::string shape_string(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

// The one list of floating dtypes our kernels take; std::nullopt for any other.
inline std::optional<DType> float_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kHalf:
      return DType::kFloat16;
    default:
      return std::nullopt;
  }
}

// float_dtype, or the launchers' dtype-dispatch error naming the op and the dtype.
inline DType dtype_of(const char* op, at::ScalarType t) {
  const std::optional<DType> d = float_dtype(t);
  TORCH_CHECK(d.has_value(), op, ": unsupported dtype ", t,
              "; supported: float32, bfloat16, float16");
  return *d;
}

}  // namespace forge

#define FORGE_CHECK_DIM(op, t, n)                                                     \
  TORCH_CHECK((t).dim() == (n), op, ": " #t " must be a " #n "-D tensor, got shape ", \
              ::forge::shape_string(t))

#define FORGE_CHECK_DTYPE(op, t, dtype)                                                         \
  TORCH_CHECK((t).scalar_type() == (dtype), op, ": " #t " must have dtype ", (dtype), ", got ", \
              (t).scalar_type())

#define FORGE_CHECK_SAME_DTYPE(op, t, ref)                                                  \
  TORCH_CHECK((t).scalar_type() == (ref).scalar_type(), op,                                 \
              ": " #t " must have the dtype of " #ref " (", (ref).scalar_type(), "), got ", \
              (t).scalar_type())

#define FORGE_CHECK_DEVICE(op, t, dev) \
  TORCH_CHECK((t).device() == (dev), op, ": " #t " must be on ", (dev), ", got ", (t).device())

// Every tensor of an op lives on the device of its main tensor (query, key, input...);
// the device launcher checks that one is its own.
#define FORGE_CHECK_SAME_DEVICE(op, t, ref)                                                       \
  TORCH_CHECK((t).device() == (ref).device(), op, ": " #t " must be on the device of " #ref " (", \
              (ref).device(), "), got ", (t).device())

#define FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, t)                          \
  TORCH_CHECK((t).size(-1) <= 1 || (t).stride(-1) == 1, op,             \
              ": " #t                                                   \
              " must have a contiguous last dimension (stride 1), got " \
              "strides ",                                               \
              (t).strides())

#define FORGE_CHECK_CONTIGUOUS(op, t) \
  TORCH_CHECK((t).is_contiguous(), op, ": " #t " must be contiguous, got strides ", (t).strides())

#define FORGE_CHECK_SIZE(op, t, dim, expected)                                                 \
  TORCH_CHECK((t).size(dim) == (expected), op, ": " #t ".size(" #dim ") must be ", (expected), \
              " (" #expected "), got ", (t).size(dim), " (shape ", ::forge::shape_string(t), ")")

#define FORGE_CHECK_FLOATING(op, t)                                    \
  TORCH_CHECK(::forge::float_dtype((t).scalar_type()).has_value(), op, \
              ": " #t " must have dtype float32, bfloat16 or float16, got ", (t).scalar_type())

#define FORGE_CHECK_CPU(op, t) FORGE_CHECK_DEVICE(op, t, at::Device(at::kCPU))

namespace forge {

// The rows of t (all dimensions but the last) as at most two levels of evenly spaced
// rows; ok = false when they need more (then the caller reports the shape and strides).
inline bool row_layout(const at::Tensor& t, RowLayout& layout) {
  // Merge adjacent leading dimensions from the innermost out; size-1 dims are free.
  std::vector<std::pair<int64_t, int64_t>> groups;  // (count, stride), innermost first
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (!groups.empty() && t.stride(d) == groups.back().first * groups.back().second) {
      groups.back().first *= t.size(d);
    } else {
      groups.emplace_back(t.size(d), t.stride(d));
    }
  }
  if (groups.size() > 2) return false;
  layout = RowLayout{};
  if (!groups.empty()) {
    layout.inner_count = groups[0].first;
    layout.inner_stride = groups[0].second;
    layout.outer_stride =
        groups.size() == 2 ? groups[1].second : groups[0].first * groups[0].second;
  }
  return true;
}

inline int64_t num_rows(const at::Tensor& t) {
  return t.dim() == 0 || t.size(-1) == 0 ? 0 : t.numel() / t.size(-1);
}

}  // namespace forge

// Rows of t (leading dimensions) as a RowLayout named `var`, or an error naming t.
#define FORGE_ROW_LAYOUT(op, t, var)                                             \
  ::forge::RowLayout var;                                                        \
  TORCH_CHECK(::forge::row_layout(t, var), op,                                   \
              ": the leading dimensions of " #t                                  \
              " must form at most two levels of evenly spaced rows, got shape ", \
              ::forge::shape_string(t), " with strides ", (t).strides())
