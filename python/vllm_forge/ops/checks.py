"""The native ops' argument checks, in Python, for the Python providers (the Triton
launchers and the torch references): the conditions, order and words of
csrc/launch/<op>.cpp and csrc/common/checks.h, and their exception type (TORCH_CHECK
raises RuntimeError), so every provider rejects a bad call the same way.

This module needs nothing but torch: the references import it without Triton. Values are printed as c10 prints
them: dtypes as Float, Half, Long; doubles as std::ostream does (%g). Checks that read
tensor values (indices, temperatures) run only on CPU tensors, as the native ones do: on
a GPU they would cost a device sync per call. quant_gemm's checks are in
vllm_forge.quant.checks, built on the helpers below.
"""

import math
from typing import NamedTuple

import torch

_C10_NAMES = {
    torch.float32: "Float",
    torch.bfloat16: "BFloat16",
    torch.float16: "Half",
    torch.float64: "Double",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.int16: "Short",
    torch.int32: "Int",
    torch.int64: "Long",
    torch.bool: "Bool",
    torch.uint16: "UInt16",
    torch.uint32: "UInt32",
    torch.uint64: "UInt64",
    torch.complex32: "ComplexHalf",
    torch.complex64: "ComplexFloat",
    torch.complex128: "ComplexDouble",
}
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# --- how c10 prints values ------------------------------------------------------------------


def c10_name(dtype: torch.dtype) -> str:
    name = _C10_NAMES.get(dtype)
    if name is None:  # float8_e4m3fn -> Float8_e4m3fn
        name = str(dtype).removeprefix("torch.")
        name = name[:1].upper() + name[1:]
    return name


def shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def strides(t: torch.Tensor) -> str:
    return str(list(t.stride()))


def double(x: float) -> str:
    """x as std::ostream prints a double (6 significant digits; glibc writes -nan)."""
    x = float(x)
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return f"{x:g}"


# --- the FORGE_CHECK_* family ---------------------------------------------------------------


def fail(op: str, message: str) -> None:
    raise RuntimeError(f"{op}: {message}")


def check(ok: bool, op: str, message: str) -> None:
    if not ok:
        fail(op, message)


def dim(op: str, name: str, t: torch.Tensor, n: int) -> None:
    if t.dim() != n:
        fail(op, f"{name} must be a {n}-D tensor, got shape {shape(t)}")


def dtype(op: str, name: str, t: torch.Tensor, expected: torch.dtype) -> None:
    if t.dtype != expected:
        fail(op, f"{name} must have dtype {c10_name(expected)}, got {c10_name(t.dtype)}")


def same_dtype(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.dtype != ref.dtype:
        fail(
            op,
            f"{name} must have the dtype of {ref_name} ({c10_name(ref.dtype)}), "
            f"got {c10_name(t.dtype)}",
        )


def same_device(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.device != ref.device:
        fail(op, f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}")


def floating(op: str, name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        fail(op, f"{name} must have dtype float32, bfloat16 or float16, got {c10_name(t.dtype)}")


def last_dim_contiguous(op: str, name: str, t: torch.Tensor) -> None:
    if t.shape[-1] > 1 and t.stride(-1) != 1:
        fail(
            op, f"{name} must have a contiguous last dimension (stride 1), got strides {strides(t)}"
        )


def contiguous(op: str, name: str, t: torch.Tensor) -> None:
    if not t.is_contiguous():
        fail(op, f"{name} must be contiguous, got strides {strides(t)}")


def size(op: str, name: str, t: torch.Tensor, d: int, expected: int, expected_text: str) -> None:
    """FORGE_CHECK_SIZE(op, t, d, expected); expected_text is the C++ expression's text."""
    if t.shape[d] != expected:
        fail(
            op,
            f"{name}.size({d}) must be {expected} ({expected_text}), got {t.shape[d]} "
            f"(shape {shape(t)})",
        )


class RowLayout(NamedTuple):
    """Where row r of a [..., cols] tensor starts: (r // inner_count) * outer_stride +
    (r % inner_count) * inner_stride (csrc/common/row_layout.h)."""

    inner_count: int = 1
    inner_stride: int = 0
    outer_stride: int = 0


def row_layout(op: str, name: str, t: torch.Tensor) -> RowLayout:
    """FORGE_ROW_LAYOUT: the leading dimensions of t as at most two levels of evenly
    spaced rows (a contiguous tensor, a q/k slice of a packed qkv), or an error."""
    groups: list[list[int]] = []  # [count, stride], innermost first; size-1 dims are free
    for d in range(t.dim() - 2, -1, -1):
        if t.shape[d] == 1:
            continue
        if groups and t.stride(d) == groups[-1][0] * groups[-1][1]:
            groups[-1][0] *= t.shape[d]
        else:
            groups.append([t.shape[d], t.stride(d)])
    if len(groups) > 2:
        fail(
            op,
            f"the leading dimensions of {name} must form at most two levels of evenly "
            f"spaced rows, got shape {shape(t)} with strides {strides(t)}",
        )
    if not groups:
        return RowLayout()
    (count, stride), outer = groups[0], groups[1][1] if len(groups) == 2 else None
    return RowLayout(count, stride, count * stride if outer is None else outer)


def _non_overlapping_and_dense(t: torch.Tensor) -> bool:
    """c10's TensorImpl::is_non_overlapping_and_dense (not exposed to Python)."""
    if t.is_contiguous():
        return True
    if t.dim() == 1:
        return t.shape[0] < 2 or t.stride(0) == 1
    # Dimensions by increasing stride, those of size < 2 last (they never matter).
    order = sorted(range(t.dim()), key=lambda d: (t.shape[d] < 2, t.stride(d)))
    required = 1
    for d in order:
        if t.shape[d] < 2:
            return True
        if t.stride(d) != required:
            return False
        required *= t.shape[d]
    return True


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The native refusal of two written arguments: at::get_overlap_status(a, b) is Full or
    Partial, or TooHard (strided views) for two views of one storage."""
    if a is b:
        return True
    if a.numel() == 0 or b.numel() == 0:
        return False
    same_storage = a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    if not (_non_overlapping_and_dense(a) and _non_overlapping_and_dense(b)):
        return same_storage
    if not same_storage:
        return False
    a0, b0 = a.data_ptr(), b.data_ptr()
    return a0 < b0 + b.numel() * b.element_size() and b0 < a0 + a.numel() * a.element_size()


# --- one function per op, each a port of its prepare_<op> -----------------------------------


def reshape_and_cache(
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """csrc/launch/reshape_and_cache.cpp."""
    op = "reshape_and_cache"
    dim(op, "key_cache", key_cache, 4)
    dim(op, "value_cache", value_cache, 4)
    dim(op, "key", key, 3)
    dim(op, "value", value, 3)
    dim(op, "slot_mapping", slot_mapping, 1)
    for name, t in (
        ("key_cache", key_cache),
        ("value_cache", value_cache),
        ("value", value),
        ("slot_mapping", slot_mapping),
    ):
        same_device(op, name, t, "key", key)
    floating(op, "key", key)
    for name, t in (("value", value), ("key_cache", key_cache), ("value_cache", value_cache)):
        same_dtype(op, name, t, "key", key)
    dtype(op, "slot_mapping", slot_mapping, torch.int64)
    num_tokens, num_kv_heads, head_size = key.shape
    num_blocks, block_size = key_cache.shape[0], key_cache.shape[2]
    if value.shape != key.shape:
        fail(op, f"value must have the shape of key {shape(key)}, got {shape(value)}")
    if value_cache.shape != key_cache.shape:
        fail(
            op,
            f"value_cache must have the shape of key_cache {shape(key_cache)}, got "
            f"{shape(value_cache)}",
        )
    size(op, "key_cache", key_cache, 1, num_kv_heads, "num_kv_heads")
    size(op, "key_cache", key_cache, 3, head_size, "head_size")
    size(op, "slot_mapping", slot_mapping, 0, num_tokens, "num_tokens")
    last_dim_contiguous(op, "key", key)
    last_dim_contiguous(op, "value", value)
    contiguous(op, "slot_mapping", slot_mapping)
    if key.device.type == "cpu" and num_tokens:
        bad = (slot_mapping >= num_blocks * block_size).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            fail(
                op,
                f"slot_mapping[{i}] = {int(slot_mapping[i])} is out of range for a cache "
                f"of {num_blocks} blocks of {block_size} slots (negative slots are skipped)",
            )


def paged_attention(
    out: torch.Tensor,
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    scale: float,
    sliding_window: int,
    softcap: float,
) -> None:
    """csrc/launch/paged_attention.cpp, and the CPU launcher's dtype dispatch."""
    op = "paged_attention"
    tensors = (
        ("out", out, 3),
        ("key_cache", key_cache, 4),
        ("value_cache", value_cache, 4),
        ("query_start_loc", query_start_loc, 1),
        ("seq_lens", seq_lens, 1),
        ("block_table", block_table, 2),
    )
    dim(op, "query", query, 3)
    for name, t, n in tensors:
        dim(op, name, t, n)
    for name, t, _ in tensors:
        same_device(op, name, t, "query", query)
    for name, t, _ in tensors[:3]:
        same_dtype(op, name, t, "query", query)
    for name, t, _ in tensors[3:]:
        dtype(op, name, t, torch.int32)
    num_tokens, num_heads, head_size = query.shape
    num_blocks, num_kv_heads, block_size = key_cache.shape[:3]
    num_seqs = seq_lens.shape[0]
    if out.shape != query.shape:
        fail(op, f"out must have the shape of query {shape(query)}, got {shape(out)}")
    if value_cache.shape != key_cache.shape:
        fail(
            op,
            f"value_cache must have the shape of key_cache {shape(key_cache)}, got "
            f"{shape(value_cache)}",
        )
    size(op, "key_cache", key_cache, 3, head_size, "head_size")
    if not (head_size % 16 == 0 and 32 <= head_size <= 256):
        fail(
            op, f"head_size (query.size(2)) must be a multiple of 16 in [32, 256], got {head_size}"
        )
    if not (num_kv_heads > 0 and num_heads % num_kv_heads == 0):
        fail(
            op,
            f"the number of query heads ({num_heads}) must be a multiple of the number "
            f"of KV heads (key_cache.size(1) = {num_kv_heads})",
        )
    if not (block_size > 0 and block_size % 16 == 0):
        fail(
            op,
            f"block size (key_cache.size(2)) must be a positive multiple of 16, got {block_size}",
        )
    size(op, "query_start_loc", query_start_loc, 0, num_seqs + 1, "num_seqs + 1")
    size(op, "block_table", block_table, 0, num_seqs, "num_seqs")
    if num_seqs == 0 and num_tokens > 0:
        fail(op, f"{num_tokens} query tokens but no sequences (seq_lens is empty)")
    last_dim_contiguous(op, "out", out)
    last_dim_contiguous(op, "query", query)
    if not (key_cache.stride(2) == 1 and key_cache.stride(3) == block_size):
        fail(
            op,
            f"key_cache must store each block's keys transposed (strides [..., ..., 1, "
            f"block_size = {block_size}], a transposed view of [num_blocks, num_kv_heads, "
            f"head_size, block_size]), got strides {strides(key_cache)}",
        )
    if not (value_cache.stride(3) == 1 and value_cache.stride(2) == head_size):
        fail(
            op,
            f"value_cache must have contiguous [block_size, head_size] tiles (strides "
            f"[..., ..., {head_size}, 1]), got strides {strides(value_cache)}",
        )
    contiguous(op, "query_start_loc", query_start_loc)
    contiguous(op, "seq_lens", seq_lens)
    last_dim_contiguous(op, "block_table", block_table)
    if not (math.isfinite(scale) and scale > 0):
        fail(op, f"scale must be finite and > 0, got {double(scale)}")
    if not (math.isfinite(softcap) and softcap >= 0):
        fail(op, f"softcap must be finite and >= 0 (0 disables it), got {double(softcap)}")
    if not (sliding_window == -1 or sliding_window > 0):
        fail(op, f"sliding_window must be -1 (none) or > 0, got {sliding_window}")
    if sliding_window > 2**31 - 1:
        fail(op, f"sliding_window too large: {sliding_window}")
    if query.device.type == "cpu":
        _check_paged_metadata(
            query_start_loc, seq_lens, block_table, num_tokens, block_size, num_blocks
        )
    # The launcher's dtype dispatch, reached only when there is work (num_tokens > 0).
    if num_tokens and query.dtype not in FLOAT_DTYPES:
        fail(
            op, f"unsupported dtype {c10_name(query.dtype)}; supported: float32, bfloat16, float16"
        )


def _check_paged_metadata(
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    num_tokens: int,
    block_size: int,
    num_blocks: int,
) -> None:
    """The kernels trust the metadata: a bad index must be an error, not a wild read."""
    op = "paged_attention"
    qsl, lens = query_start_loc.tolist(), seq_lens.tolist()
    num_seqs = len(lens)
    if qsl[0] != 0:
        fail(op, f"query_start_loc[0] must be 0, got {qsl[0]}")
    if qsl[num_seqs] != num_tokens:
        fail(
            op,
            f"query_start_loc[{num_seqs}] must equal the number of query tokens "
            f"({num_tokens}), got {qsl[num_seqs]}",
        )
    max_blocks = block_table.shape[1]
    for s, seq_len in enumerate(lens):
        q_len = qsl[s + 1] - qsl[s]
        if q_len < 0:
            fail(
                op,
                f"query_start_loc must be non-decreasing, got query_start_loc[{s}] = "
                f"{qsl[s]} > query_start_loc[{s + 1}] = {qsl[s + 1]}",
            )
        if seq_len < q_len:
            fail(
                op,
                f"seq_lens[{s}] = {seq_len} is shorter than the sequence's {q_len} query "
                f"tokens (seq_lens counts context plus new tokens)",
            )
        used = -(-seq_len // block_size)
        if used > max_blocks:
            fail(
                op,
                f"seq_lens[{s}] = {seq_len} needs {used} blocks of {block_size} but "
                f"block_table has only {max_blocks} columns",
            )
        if used > 0:
            ids = block_table[s, :used]
            bad = ((ids < 0) | (ids >= num_blocks)).nonzero()
            if len(bad):
                b = int(bad[0, 0])
                fail(
                    op,
                    f"block_table[{s}][{b}] = {int(ids[b])} is out of range for a cache "
                    f"of {num_blocks} blocks",
                )


def _weight_and_epsilon(
    op: str, input: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> None:
    if weight is not None:
        same_device(op, "weight", weight, "input", input)
        hidden = input.shape[-1]
        if not (weight.dim() == 1 and weight.shape[0] == hidden):
            fail(
                op,
                f"weight must have shape [{hidden}] (input's last dimension), got {shape(weight)}",
            )
        same_dtype(op, "weight", weight, "input", input)
        if weight.shape[0] > 1 and weight.stride(0) != 1:
            fail(op, f"weight must be contiguous, got strides {strides(weight)}")
    if not (math.isfinite(epsilon) and epsilon >= 0):
        fail(op, f"epsilon must be finite and >= 0, got {double(epsilon)}")


def rms_norm(
    out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> tuple[RowLayout, RowLayout]:
    """csrc/launch/rms_norm.cpp; returns the row layouts of (out, input)."""
    op = "rms_norm"
    if input.dim() < 1:
        fail(op, "input must have at least 1 dimension")
    same_device(op, "out", out, "input", input)
    floating(op, "input", input)
    same_dtype(op, "out", out, "input", input)
    if out.shape != input.shape:
        fail(op, f"out must have the shape of input {shape(input)}, got {shape(out)}")
    last_dim_contiguous(op, "input", input)
    last_dim_contiguous(op, "out", out)
    _weight_and_epsilon(op, input, weight, epsilon)
    input_rows = row_layout(op, "input", input)
    return row_layout(op, "out", out), input_rows


def fused_add_rms_norm(
    input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, epsilon: float
) -> tuple[RowLayout, RowLayout]:
    """csrc/launch/rms_norm.cpp; returns the row layouts of (input, residual)."""
    op = "fused_add_rms_norm"
    if input.dim() < 1:
        fail(op, "input must have at least 1 dimension")
    same_device(op, "residual", residual, "input", input)
    floating(op, "input", input)
    same_dtype(op, "residual", residual, "input", input)
    if residual.shape != input.shape:
        fail(op, f"residual must have the shape of input {shape(input)}, got {shape(residual)}")
    last_dim_contiguous(op, "input", input)
    last_dim_contiguous(op, "residual", residual)
    _weight_and_epsilon(op, input, weight, epsilon)
    if shares_memory(input, residual):
        fail(op, "input and residual must not share memory (both are written)")
    return row_layout(op, "input", input), row_layout(op, "residual", residual)


def gated_activation(
    op: str, out: torch.Tensor, input: torch.Tensor
) -> tuple[RowLayout, RowLayout]:
    """silu_and_mul's and gelu_and_mul's checks (csrc/launch/activation.cpp); returns the
    row layouts of (out, input)."""
    if input.dim() < 1:
        fail(op, "input must have at least 1 dimension")
    same_device(op, "out", out, "input", input)
    floating(op, "input", input)
    same_dtype(op, "out", out, "input", input)
    width = input.shape[-1]
    if width % 2:
        fail(op, f"the last dimension of input must be even (gate and up halves), got {width}")
    expected = list(input.shape[:-1]) + [width // 2]
    if list(out.shape) != expected:
        fail(
            op,
            f"out must have shape {expected} (input's with the last dimension halved), "
            f"got {shape(out)}",
        )
    last_dim_contiguous(op, "input", input)
    last_dim_contiguous(op, "out", out)
    input_rows = row_layout(op, "input", input)
    return row_layout(op, "out", out), input_rows


def gelu_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        fail("gelu_and_mul", f"approximate must be 'none' or 'tanh', got '{approximate}'")


class HeadView(NamedTuple):
    stride_token: int
    stride_head: int
    num_heads: int


def _rotary_heads(
    name: str, t: torch.Tensor, query: torch.Tensor, num_tokens: int, head_size: int
) -> HeadView:
    op = "rotary_embedding"
    same_dtype(op, name, t, "query", query)
    if t.dim() not in (2, 3):
        fail(
            op,
            f"{name} must be [num_tokens, heads * head_size] or [num_tokens, heads, "
            f"head_size], got shape {shape(t)}",
        )
    if t.shape[0] != num_tokens:
        fail(op, f"{name}.size(0) must be {num_tokens} (positions.size(0)), got {t.shape[0]}")
    last_dim_contiguous(op, name, t)
    if t.dim() == 2:
        if t.shape[1] % head_size:
            fail(op, f"{name}.size(1) = {t.shape[1]} is not a multiple of head_size = {head_size}")
        return HeadView(t.stride(0), head_size, t.shape[1] // head_size)
    if t.shape[2] != head_size:
        fail(op, f"{name}.size(2) must be head_size = {head_size}, got {t.shape[2]}")
    return HeadView(t.stride(0), t.stride(1), t.shape[1])


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor | None,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> tuple[HeadView, HeadView | None]:
    """csrc/launch/rotary_embedding.cpp; returns the head views of (query, key)."""
    op = "rotary_embedding"
    dim(op, "positions", positions, 1)
    same_device(op, "positions", positions, "query", query)
    dtype(op, "positions", positions, torch.int64)
    contiguous(op, "positions", positions)
    floating(op, "query", query)
    if head_size <= 0:
        fail(op, f"head_size must be > 0, got {head_size}")
    dim(op, "cos_sin_cache", cos_sin_cache, 2)
    same_device(op, "cos_sin_cache", cos_sin_cache, "query", query)
    same_dtype(op, "cos_sin_cache", cos_sin_cache, "query", query)
    last_dim_contiguous(op, "cos_sin_cache", cos_sin_cache)
    rot_dim = cos_sin_cache.shape[1]
    if not (0 < rot_dim <= head_size and rot_dim % 2 == 0 and rot_dim <= 1024):
        fail(
            op,
            f"rotary dim (cos_sin_cache.size(1)) must be even, in (0, head_size = "
            f"{head_size}] and at most 1024, got {rot_dim}",
        )
    num_tokens = positions.shape[0]
    q = _rotary_heads("query", query, query, num_tokens, head_size)
    k = None
    if key is not None:
        same_device(op, "key", key, "query", query)
        k = _rotary_heads("key", key, query, num_tokens, head_size)
    if query.device.type == "cpu" and num_tokens:
        max_position = cos_sin_cache.shape[0]
        bad = ((positions < 0) | (positions >= max_position)).nonzero()
        if len(bad):
            t = int(bad[0, 0])
            fail(
                op,
                f"positions[{t}] = {int(positions[t])} is out of range for a "
                f"cos_sin_cache of {max_position} positions",
            )
    return q, k


def softmax(
    op: str, out: torch.Tensor, input: torch.Tensor, temperature: torch.Tensor | None
) -> None:
    """softmax's and log_softmax's checks (csrc/launch/softmax.cpp)."""
    if input.dim() != 2:
        fail(op, f"input must be a 2-D tensor [rows, cols], got shape {shape(input)}")
    same_device(op, "out", out, "input", input)
    floating(op, "input", input)
    same_dtype(op, "out", out, "input", input)
    if out.shape != input.shape:
        fail(op, f"out must have the shape of input {shape(input)}, got {shape(out)}")
    last_dim_contiguous(op, "input", input)
    last_dim_contiguous(op, "out", out)
    rows, cols = input.shape
    if cols == 0 and rows > 0:
        fail(op, f"input must have at least one column, got shape {shape(input)}")
    if temperature is None:
        return
    same_device(op, "temperature", temperature, "input", input)
    dtype(op, "temperature", temperature, torch.float32)
    if not (temperature.dim() == 1 and temperature.shape[0] == rows):
        fail(op, f"temperature must have shape [{rows}] (one per row), got {shape(temperature)}")
    contiguous(op, "temperature", temperature)
    if input.device.type == "cpu":
        bad = (~(torch.isfinite(temperature) & (temperature > 0))).nonzero()
        if len(bad):
            r = int(bad[0, 0])
            fail(
                op, f"temperature[{r}] must be finite and > 0, got {double(float(temperature[r]))}"
            )


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    gating_output: torch.Tensor,
    renormalize: bool,
) -> None:
    """csrc/launch/softmax.cpp."""
    op = "topk_softmax"
    dim(op, "gating_output", gating_output, 2)
    dim(op, "topk_weights", topk_weights, 2)
    dim(op, "topk_ids", topk_ids, 2)
    same_device(op, "topk_weights", topk_weights, "gating_output", gating_output)
    same_device(op, "topk_ids", topk_ids, "gating_output", gating_output)
    floating(op, "gating_output", gating_output)
    dtype(op, "topk_weights", topk_weights, torch.float32)
    dtype(op, "topk_ids", topk_ids, torch.int32)
    last_dim_contiguous(op, "gating_output", gating_output)
    contiguous(op, "topk_weights", topk_weights)
    contiguous(op, "topk_ids", topk_ids)
    rows, experts = gating_output.shape
    k = topk_weights.shape[1]
    size(op, "topk_weights", topk_weights, 0, rows, "rows")
    if topk_ids.shape != topk_weights.shape:
        fail(
            op,
            f"topk_ids must have the shape of topk_weights {shape(topk_weights)}, got "
            f"{shape(topk_ids)}",
        )
    if not 1 <= k <= experts:
        fail(
            op,
            f"k (topk_weights.size(1)) must be in [1, {experts}] (the number of experts), got {k}",
        )
    if experts > 2**31 - 1:
        fail(op, f"too many experts: {experts}")
