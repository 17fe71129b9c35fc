"""quant_gemm's argument checks for the Python providers (torch reference, Triton): the
conditions, order and words of the native op's csrc/launch/quant_gemm.cpp, and its
exception type (TORCH_CHECK raises RuntimeError), so every provider rejects a bad call
the same way. Dtypes are named as c10 prints them (Float, Half, Char, Byte)."""

import torch

from vllm_forge.quant.format import BITS, GROUP_SIZES, num_groups, packed_columns

OP = "quant_gemm"
_C10_NAMES = {torch.float32: "Float", torch.bfloat16: "BFloat16", torch.float16: "Half",
              torch.float64: "Double", torch.int8: "Char", torch.uint8: "Byte",
              torch.int16: "Short", torch.int32: "Int", torch.int64: "Long", torch.bool: "Bool"}


def c10_name(dtype: torch.dtype) -> str:
    return _C10_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(f"{OP}: {message}")


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _strides(t: torch.Tensor) -> str:
    return str(list(t.stride()))


def _dim(name: str, t: torch.Tensor, n: int) -> None:
    _check(t.dim() == n, f"{name} must be a {n}-D tensor, got shape {_shape(t)}")


def _last_dim_contiguous(name: str, t: torch.Tensor) -> None:
    _check(t.shape[-1] <= 1 or t.stride(-1) == 1,
           f"{name} must have a contiguous last dimension (stride 1), got strides {_strides(t)}")


def _same_device(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    _check(t.device == ref.device,
           f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}")


def _same_dtype(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    _check(t.dtype == ref.dtype, f"{name} must have the dtype of {ref_name} "
           f"({c10_name(ref.dtype)}), got {c10_name(t.dtype)}")


def quant_gemm(out: torch.Tensor, x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
               mins: torch.Tensor | None, bias: torch.Tensor | None, bits: int,
               group_size: int) -> None:
    """Raise RuntimeError naming the argument and the value for any call the native op
    refuses; return None for a valid one."""
    _check(bits in BITS, f"bits must be 4 or 8, got {bits}")
    _check(group_size in GROUP_SIZES,
           f"group_size must be 16, 32, 64, 128 or 256, got {group_size}")
    _dim("x", x, 2)
    _check(x.dtype in (torch.float32, torch.bfloat16, torch.float16),
           f"x must have dtype float32, bfloat16 or float16, got {c10_name(x.dtype)}")
    _last_dim_contiguous("x", x)
    _same_device("out", out, "x", x)
    _same_device("qweight", qweight, "x", x)
    _same_device("scales", scales, "x", x)
    m, k = x.shape
    _dim("qweight", qweight, 2)
    if bits == 8:
        _check(qweight.dtype == torch.int8, "qweight must have dtype int8 for bits=8 (one code "
               f"per weight), got {c10_name(qweight.dtype)}")
    else:
        _check(qweight.dtype == torch.uint8, "qweight must have dtype uint8 for bits=4 (two "
               f"codes per byte), got {c10_name(qweight.dtype)}")
    n = qweight.shape[0]
    cols = packed_columns(k, bits)
    per_block = " (16 bytes per 32 weights)" if bits == 4 else ""
    _check(qweight.shape[1] == cols, f"qweight must have shape [N, {cols}] for K={k} "
           f"(x.size(1)) and bits={bits}{per_block}, got {_shape(qweight)}")
    _last_dim_contiguous("qweight", qweight)
    groups = num_groups(k, group_size)
    _dim("scales", scales, 2)
    _check(scales.dtype in (torch.float32, torch.float16),
           f"scales must have dtype float32 or float16, got {c10_name(scales.dtype)}")
    _check(tuple(scales.shape) == (n, groups), f"scales must have shape [{n}, {groups}] (N, "
           f"ceil(K / group_size) for K={k}, group_size={group_size}), got {_shape(scales)}")
    _last_dim_contiguous("scales", scales)
    if mins is not None:
        _same_device("mins", mins, "x", x)
        _same_dtype("mins", mins, "scales", scales)
        _check(mins.shape == scales.shape and mins.stride() == scales.stride(),
               f"mins must have the shape and strides of scales {_shape(scales)} "
               f"{_strides(scales)}, got {_shape(mins)} {_strides(mins)}")
    if bias is not None:
        _same_device("bias", bias, "x", x)
        _same_dtype("bias", bias, "x", x)
        _check(bias.dim() == 1 and bias.shape[0] == n,
               f"bias must have shape [{n}] (N = qweight.size(0)), got {_shape(bias)}")
        _last_dim_contiguous("bias", bias)
    _dim("out", out, 2)
    _same_dtype("out", out, "x", x)
    _check(tuple(out.shape) == (m, n), f"out must have shape [{m}, {n}] (x.size(0), "
           f"qweight.size(0)), got {_shape(out)}")
    _last_dim_contiguous("out", out)
    _check(out.numel() == 0 or not _overlap(out, x), "out must not share memory with x")


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The native rule (at::get_overlap_status): views of one storage share memory unless
    both are contiguous and their byte ranges are disjoint."""
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    if not (a.is_contiguous() and b.is_contiguous()):
        return True
    a0, b0 = a.data_ptr(), b.data_ptr()
    return a0 < b0 + b.numel() * b.element_size() and b0 < a0 + a.numel() * a.element_size()
