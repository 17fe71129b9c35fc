"""Repack GGUF weight tensors into the kernels' layout (`format.PackedWeight`), losslessly.

`repack` takes a 2-D tensor's raw data as `gguf.GGUFReader(path).tensors[i].data`
gives it and returns a `PackedWeight` whose `dequantize()` reproduces
`gguf.quants.dequantize(data, type)` (float32): codes are copied bit for bit and the
scales/mins are chosen so that PackedWeight's `q * s + m` (fp32, two roundings) performs
the same fp32 operations as gguf's reference:

=====  ====  =====  ===========  =====================  ====================
type   bits  group  codes        scales                 mins
=====  ====  =====  ===========  =====================  ====================
Q4_0   4     32     q (0..15)    fp16 d                 fp16 -8 d
Q4_1   4     32     q (0..15)    fp16 d                 fp16 m
Q5_0   8     32     q - 16       fp16 d                 None
Q5_1   8     32     q (0..31)    fp16 d                 fp16 m
Q8_0   8     32     q            fp16 d                 None
Q4_K   4     32     q (0..15)    fp32 d * sc            fp32 -(dmin * m)
Q5_K   8     32     q (0..31)    fp32 d * sc            fp32 -(dmin * m)
Q6_K   8     16     q - 32       fp32 d * sc            None
=====  ====  =====  ===========  =====================  ====================

F32, F16 and BF16 tensors come back as torch tensors of that dtype, unchanged.

Exactness: d * sc and dmin * m (fp16 times a 6- or 8-bit integer) and every product
s * q are exact in fp32, and a - b equals a + (-b) in IEEE arithmetic, so the result is
bitwise gguf's for all types but one: for Q4_0, d * (q - 8) with q = 8 is -0.0 when d < 0,
while 8 d + (-8 d) is +0.0 (equal values, different sign bit). Non-finite d (never in a
real checkpoint) can give NaN where gguf gives +-inf for Q4_0.

The data is read as little-endian (GGUF's byte order), on a little-endian host.
"""

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as T

from .format import PackedWeight

# Types returned as plain float tensors (the numpy dtype of their elements).
_FLOAT_TYPES = {T.F32: np.float32, T.F16: np.float16, T.BF16: np.int16}
_QUANT_TYPES = (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K)
SUPPORTED_TYPES: tuple[T, ...] = tuple(_FLOAT_TYPES) + _QUANT_TYPES

_FP16_MAX = float(np.finfo(np.float16).max)


def repack(
    name: str, tensor_type: T, data: np.ndarray, shape: tuple[int, int]
) -> PackedWeight | torch.Tensor:
    """Repack one GGUF weight into the kernels' layout.

    Parameters
    ----------
    name : str
        The tensor's name, for error messages.
    tensor_type : gguf.GGMLQuantizationType
        Its GGUF type; one of `SUPPORTED_TYPES`.
    data : numpy.ndarray
        Its raw data as `GGUFReader` returns it: uint8 [N, bytes_per_row] for block
        types (BF16 included), float32 / float16 [N, K] for F32 / F16. Any array with
        the same bytes per row and N rows in total is accepted.
    shape : tuple[int, int]
        (N, K) = (out_features, in_features), the reverse of GGUF's `tensor.shape`.

    Returns
    -------
    PackedWeight or torch.Tensor
        A `PackedWeight` for quantised types; a float32 / float16 / bfloat16 [N, K]
        tensor (own memory, not the file's memory map) for F32 / F16 / BF16.

    Raises
    ------
    ValueError
        For an unsupported type, or a shape that does not match the data or the type's
        block size; the message names the tensor and the type.
    """
    try:
        qtype = T(tensor_type)
    except ValueError:
        raise ValueError(
            f"GGUF tensor {name!r}: unknown type {tensor_type!r}; supported: {_supported()}"
        ) from None
    if qtype not in SUPPORTED_TYPES:
        raise ValueError(
            f"GGUF tensor {name!r}: type {qtype.name} is not supported by "
            f"repack; supported: {_supported()}"
        )
    rows = _rows(name, qtype, data, shape)
    n, k = shape
    if qtype in _FLOAT_TYPES:
        values = torch.from_numpy(rows.view(_FLOAT_TYPES[qtype]).copy())
        return values.view(torch.bfloat16) if qtype == T.BF16 else values

    block, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rows.reshape(n, k // block, type_size)
    qweight, scales, mins, bits, group = _REPACKERS[qtype](blocks)
    return PackedWeight(
        qweight=torch.from_numpy(np.ascontiguousarray(qweight).reshape(n, -1)),
        scales=torch.from_numpy(np.ascontiguousarray(scales).reshape(n, -1)),
        mins=None if mins is None else torch.from_numpy(np.ascontiguousarray(mins).reshape(n, -1)),
        bits=bits,
        group_size=group,
        in_features=k,
    )


def _supported() -> str:
    return ", ".join(t.name for t in SUPPORTED_TYPES)


def _rows(name: str, qtype: T, data: np.ndarray, shape) -> np.ndarray:
    """The data as uint8 [N, bytes_per_row], after checking it matches `shape`."""
    where = f"GGUF tensor {name!r} ({qtype.name})"
    if len(shape) != 2 or any(int(d) <= 0 for d in shape):
        raise ValueError(f"{where}: shape must be (out_features, in_features) > 0, got {shape}")
    n, k = (int(d) for d in shape)
    block, type_size = GGML_QUANT_SIZES[qtype]
    if k % block:
        raise ValueError(f"{where}: in_features {k} is not a multiple of the block size {block}")
    row_bytes = k // block * type_size
    data = np.ascontiguousarray(data)
    # Compare in bytes, so float and uint8 views of the same data are both accepted;
    # checking the row length (not only the total) catches a transposed shape.
    raw = data.reshape(-1, data.shape[-1] if data.ndim else 1).view(np.uint8)
    if raw.shape != (n, row_bytes):
        raise ValueError(
            f"{where}: shape {(n, k)} needs {n} rows of {row_bytes} bytes, but "
            f"the data is {data.dtype} {list(data.shape)} ({raw.shape[0]} rows "
            f"of {raw.shape[1]} bytes)"
        )
    return raw


# Per-type repackers: blocks uint8 [N, blocks per row, type_size] ->
# (qweight, scales, mins, bits, group_size), arrays with N leading rows.


def _fp16(blocks: np.ndarray, at: int) -> np.ndarray:
    """The fp16 field at byte offset `at` of every block, as float16 [N, blocks]."""
    return np.ascontiguousarray(blocks[..., at : at + 2]).view(np.float16)[..., 0]


def _low_high(qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16 bytes per 32 weights -> codes of weights 0..15 (low nibbles) and 16..31 (high)."""
    return qs & 0x0F, qs >> 4


def _fifth_bit(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1's 4 bytes of high bits (bit i of the little-endian uint32 is weight i)
    -> 0 or 16 per weight, [..., 32]."""
    return np.unpackbits(qh, axis=-1, bitorder="little") << 4


def _q4_0(b):
    d = _fp16(b, 0)
    mins = -8 * d.astype(np.float32)
    # -8 d is an fp16 value unless |d| > 65504 / 8; then keep both in fp32 (still exact).
    dtype = np.float16 if np.all(np.abs(mins) <= _FP16_MAX) else np.float32
    # GGUF Q4_0's nibble order is the kernels' order: the 16 bytes are copied as they are.
    return b[..., 2:18], d.astype(dtype), mins.astype(dtype), 4, 32


def _q4_1(b):
    return b[..., 4:20], _fp16(b, 0), _fp16(b, 2), 4, 32


def _q5(b, qh_at):
    lo, hi = _low_high(b[..., qh_at + 4 : qh_at + 20])
    return np.concatenate([lo, hi], axis=-1) | _fifth_bit(b[..., qh_at : qh_at + 4])


def _q5_0(b):
    # q - 16 with uint8 wrap-around is its int8 two's complement (no wider temporaries).
    codes = (_q5(b, 2) - np.uint8(16)).view(np.int8)
    return codes, _fp16(b, 0), None, 8, 32


def _q5_1(b):
    return _q5(b, 4).view(np.int8), _fp16(b, 0), _fp16(b, 2), 8, 32


def _q8_0(b):
    return b[..., 2:34].view(np.int8), _fp16(b, 0), None, 8, 32


def _k_scales_mins(b):
    """Q4_K/Q5_K super-block header (d, dmin, 12 bytes of 6-bit sc/m for 8 sub-blocks)
    -> fp32 scales d * sc and mins -(dmin * m), [N, blocks, 8]."""
    d = _fp16(b, 0).astype(np.float32)[..., None]
    dmin = _fp16(b, 2).astype(np.float32)[..., None]
    s = b[..., 4:16]
    lo, mn, hi = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    # Sub-blocks 0..3: 6 low bits of bytes 0..3 (sc) and 4..7 (m). Sub-blocks 4..7: low 4
    # bits from the nibbles of bytes 8..11, high 2 bits from the top bits of bytes 0..7.
    sc = np.concatenate([lo & 0x3F, (hi & 0x0F) | ((lo >> 2) & 0x30)], axis=-1)
    m = np.concatenate([mn & 0x3F, (hi >> 4) | ((mn >> 2) & 0x30)], axis=-1)
    return d * sc.astype(np.float32), -(dmin * m.astype(np.float32))


def _k_codes4(qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K 128 bytes of nibbles: 4 chunks of 32 bytes, the low nibbles the 32 weights
    of sub-block 2c and the high nibbles those of 2c+1. Returns each chunk's two halves
    (bytes 0..15 and 16..31), [N, blocks, 4, 16]."""
    c = qs.reshape(*qs.shape[:-1], 4, 32)
    return c[..., :16], c[..., 16:]


def _q4_k(b):
    a, z = _k_codes4(b[..., 16:144])
    # Our byte j of a 32-weight block holds weights j (low) and 16+j (high) of it:
    # sub-block 2c takes the low nibbles of chunk bytes j and 16+j, 2c+1 the high ones.
    even = (a & 0x0F) | (z << 4)
    odd = (a >> 4) | (z & 0xF0)
    qweight = np.stack([even, odd], axis=-2)  # [N, blocks, 4, 2, 16]
    scales, mins = _k_scales_mins(b)
    return qweight, scales, mins, 4, 32


def _q5_k(b):
    qh = b[..., 16:48]
    a, z = _k_codes4(b[..., 48:176])
    low = np.stack(
        [np.concatenate([a & 0x0F, z & 0x0F], axis=-1), np.concatenate([a >> 4, z >> 4], axis=-1)],
        axis=-2,
    )  # [N, B, 4, 2, 32]
    # Bit i of qh[j] is the fifth bit of weight j of sub-block i.
    high = np.unpackbits(qh[..., None, :], axis=-2, bitorder="little")  # [N, B, 8, 32]
    codes = low.reshape(high.shape) | (high << 4)
    scales, mins = _k_scales_mins(b)
    return codes.view(np.int8), scales, mins, 8, 32


def _q6_k(b):
    ql, qh, sc = b[..., 0:128], b[..., 128:192], b[..., 192:208].view(np.int8)
    d = _fp16(b, 208).astype(np.float32)[..., None]
    # Two halves of 128 weights. In half h, ql's 64 bytes give weights 0..63 (low nibbles)
    # and 64..127 (high); qh's 32 bytes give 2 high bits to weights 32 s + j from bits 2 s.
    lq = ql.reshape(*ql.shape[:-1], 2, 1, 64) >> np.array([0, 4], np.uint8)[:, None]
    hq = qh.reshape(*qh.shape[:-1], 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8)[:, None]
    q = (lq & 0x0F).reshape(*b.shape[:-1], 256) | ((hq & 0x03) << 4).reshape(*b.shape[:-1], 256)
    codes = (q - np.uint8(32)).view(np.int8)  # q - 32 as int8, as in Q5_0
    return codes, d * sc.astype(np.float32), None, 8, 16


_REPACKERS = {
    T.Q4_0: _q4_0,
    T.Q4_1: _q4_1,
    T.Q5_0: _q5_0,
    T.Q5_1: _q5_1,
    T.Q8_0: _q8_0,
    T.Q4_K: _q4_k,
    T.Q5_K: _q5_k,
    T.Q6_K: _q6_k,
}
