"""The in-memory layout of a weight-only quantised matrix, the one every checkpoint
format (GGUF block types, GPTQ, AWQ) is repacked into once, at load, and the only one
the `quant_gemm` kernels read.

A weight W [N, K] (N output features, K input features) is stored as integer codes q
with one scale s (and optionally one min m) per group of `group_size` consecutive k of
a row, and means

    W[n, k] = s[n, k // group_size] * q[n, k] + m[n, k // group_size]   (m = 0 if absent)

computed in fp32. The last group of a row may be shorter (K need not be a multiple of
the group). The codes:

- bits 8: `qweight` int8 [N, K], q in -128..127, row-major.
- bits 4: `qweight` uint8 [N, ceil(K / 32) * 16], q in 0..15. Row n is a sequence of
  32-weight blocks of 16 bytes; byte j of block b holds the code of k = 32 b + j in its
  low nibble and of k = 32 b + 16 + j in its high nibble (GGUF Q4_0's order). One
  16-byte load then gives two 16-lane vectors of consecutive k. Codes past K are 0.

Scales and mins are float32 or float16 [N, ceil(K / group_size)]; float16 where the
checkpoint's scales are float16 values (GGUF Q4_0/Q4_1/Q5_x/Q8_0, GPTQ, AWQ: exact, and
half the bytes), float32 where they are products (GGUF K-quants: super-block scale times
6-bit sub-block scale is not a float16 value). Symmetric int4 (GGUF Q4_0, GPTQ
sym) is q - 8: scale s and min -8 s, exact in both float types.
"""

from dataclasses import dataclass

import torch

BITS = (4, 8)
GROUP_SIZES = (16, 32, 64, 128, 256)
SCALE_DTYPES = (torch.float32, torch.float16)
INT4_BLOCK = 32  # k per 16-byte int4 block


def num_groups(in_features: int, group_size: int) -> int:
    return -(-in_features // group_size)


def packed_columns(in_features: int, bits: int) -> int:
    """Columns of `qweight` for a row of `in_features` weights."""
    if bits == 8:
        return in_features
    return -(-in_features // INT4_BLOCK) * (INT4_BLOCK // 2)


@dataclass
class PackedWeight:
    """A quantised [out_features, in_features] weight in the kernels' layout."""

    qweight: torch.Tensor  # int8 [N, K] (bits 8) or uint8 [N, ceil(K/32)*16] (bits 4)
    scales: torch.Tensor  # float32 | float16 [N, ceil(K / group_size)]
    mins: torch.Tensor | None  # like scales, or None (m = 0)
    bits: int
    group_size: int
    in_features: int

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    def codes(self) -> torch.Tensor:
        """The integer codes as int32 [N, K]."""
        return unpack_codes(self.qweight, self.bits, self.in_features)

    def dequantize(self) -> torch.Tensor:
        """W as float32 [N, K]."""
        return dequantize(
            self.qweight, self.scales, self.mins, self.bits, self.group_size, self.in_features
        )

    def nbytes(self) -> int:
        t = [self.qweight, self.scales] + ([self.mins] if self.mins is not None else [])
        return sum(x.numel() * x.element_size() for x in t)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """int codes 0..15 [N, K] -> uint8 [N, ceil(K/32)*16] in the block order above."""
    n, k = codes.shape
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > 15):
        raise ValueError(
            f"pack_int4: codes must be in 0..15, got {int(codes.min())}..{int(codes.max())}"
        )
    kp = -(-k // INT4_BLOCK) * INT4_BLOCK
    padded = torch.zeros(n, kp, dtype=torch.uint8)
    padded[:, :k] = codes.to(torch.uint8)
    blocks = padded.view(n, kp // INT4_BLOCK, 2, INT4_BLOCK // 2)
    return (blocks[:, :, 0] | (blocks[:, :, 1] << 4)).reshape(n, kp // 2).contiguous()


def unpack_codes(qweight: torch.Tensor, bits: int, in_features: int) -> torch.Tensor:
    """qweight in the layout above -> int32 codes [N, K]."""
    if bits == 8:
        return qweight[:, :in_features].to(torch.int32)
    n = qweight.shape[0]
    blocks = qweight.view(n, -1, INT4_BLOCK // 2).to(torch.int32)
    codes = torch.stack((blocks & 0xF, blocks >> 4), dim=2)  # [N, blocks, 2, 16]
    return codes.reshape(n, -1)[:, :in_features]


def dequantize(
    qweight: torch.Tensor,
    scales: torch.Tensor,
    mins: torch.Tensor | None,
    bits: int,
    group_size: int,
    in_features: int,
) -> torch.Tensor:
    """W [N, K] = scales * codes + mins per group, in float32."""
    q = unpack_codes(qweight, bits, in_features).to(torch.float32)
    s = scales.to(torch.float32).repeat_interleave(group_size, dim=1)[:, :in_features]
    w = q * s
    if mins is not None:
        w = w + mins.to(torch.float32).repeat_interleave(group_size, dim=1)[:, :in_features]
    return w


def quantize_rtn(
    weight: torch.Tensor,
    bits: int,
    group_size: int,
    symmetric: bool = False,
    scale_dtype: torch.dtype = torch.float16,
) -> PackedWeight:
    """Round-to-nearest quantisation of a float weight [N, K] (tests and benchmarks).

    Asymmetric: codes 0..2^bits-1 with a min per group. Symmetric: int8 codes
    -127..127 without mins; int4 codes 0..15 meaning q - 8 (min = -8 s)."""
    if bits not in BITS or group_size not in GROUP_SIZES:
        raise ValueError(
            f"quantize_rtn: bits must be one of {BITS} and group_size one of "
            f"{GROUP_SIZES}, got bits={bits}, group_size={group_size}"
        )
    n, k = weight.shape
    g = num_groups(k, group_size)
    w = torch.zeros(n, g * group_size, dtype=torch.float32)
    w[:, :k] = weight.float()
    groups = w.view(n, g, group_size)
    valid = (torch.arange(g * group_size) < k).view(1, g, group_size)
    big = torch.finfo(torch.float32).max
    if symmetric:
        amax = groups.abs().amax(dim=2)
        qmax = 127 if bits == 8 else 7
        scales = (amax / qmax).to(scale_dtype)
        s = scales.float().clamp_min(1e-30).unsqueeze(2)
        q = torch.round(groups / s).clamp(-qmax - (bits == 4), qmax)
        mins = None
        if bits == 4:
            q = q + 8
            mins = (-8 * scales.float()).to(scale_dtype)
    else:
        lo = torch.where(valid, groups, big).amin(dim=2).clamp_max(0)
        hi = torch.where(valid, groups, -big).amax(dim=2).clamp_min(0)
        qmax = (1 << bits) - 1
        scales = ((hi - lo) / qmax).to(scale_dtype)
        mins = lo.to(scale_dtype)
        s = scales.float().clamp_min(1e-30).unsqueeze(2)
        q = torch.round((groups - mins.float().unsqueeze(2)) / s).clamp(0, qmax)
        if bits == 8:
            # int8 storage is signed: shift the codes and fold the shift into the min.
            q = q - 128
            mins = (mins.float() + 128 * scales.float()).to(scale_dtype)
    q = (q * valid).reshape(n, -1)[:, :k].to(torch.int32)
    if bits == 8:
        qweight = q.to(torch.int8).contiguous()
    else:
        qweight = pack_int4(q)
    return PackedWeight(
        qweight,
        scales.contiguous(),
        None if mins is None else mins.contiguous(),
        bits,
        group_size,
        k,
    )
