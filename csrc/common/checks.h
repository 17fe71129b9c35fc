// Argument checks for launchers. Every message names the op, the argument and the
// offending value, so a user can tell what to fix without reading our source.
#pragma once

#include <torch/types.h>

#include <cmath>
#include <sstream>
#include <vector>

namespace forge {

inline std::string shape_string(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

}  // namespace forge

#define FORGE_CHECK_DIM(op, t, n)                                                    \
  TORCH_CHECK((t).dim() == (n), op ": " #t " must be a " #n "-D tensor, got shape ", \
              ::forge::shape_string(t))

#define FORGE_CHECK_DTYPE(op, t, dtype)                                                \
  TORCH_CHECK((t).scalar_type() == (dtype), op ": " #t " must have dtype ", (dtype), \
              ", got ", (t).scalar_type())

#define FORGE_CHECK_SAME_DTYPE(op, t, ref)                                         \
  TORCH_CHECK((t).scalar_type() == (ref).scalar_type(),                           \
              op ": " #t " must have the dtype of " #ref " (", (ref).scalar_type(), \
              "), got ", (t).scalar_type())

#define FORGE_CHECK_DEVICE(op, t, dev)                                                \
  TORCH_CHECK((t).device() == (dev), op ": " #t " must be on ", (dev), ", got ", \
              (t).device())

#define FORGE_CHECK_LAST_DIM_CONTIGUOUS(op, t)                                   \
  TORCH_CHECK((t).size(-1) <= 1 || (t).stride(-1) == 1,                         \
              op ": " #t " must have a contiguous last dimension (stride 1), got " \
              "strides ",                                                       \
              (t).strides())

#define FORGE_CHECK_CONTIGUOUS(op, t) \
  TORCH_CHECK((t).is_contiguous(), op ": " #t " must be contiguous, got strides ", (t).strides())

#define FORGE_CHECK_SIZE(op, t, dim, expected)                                        \
  TORCH_CHECK((t).size(dim) == (expected), op ": " #t ".size(" #dim ") must be ",     \
              (expected), " (" #expected "), got ", (t).size(dim), " (shape ", \
              ::forge::shape_string(t), ")")
