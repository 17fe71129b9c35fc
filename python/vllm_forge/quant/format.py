"""The layouts of a weight-only quantised matrix: the row form every checkpoint format
(GGUF block types, GPTQ, AWQ) is repacked into at load (PackedWeight: rows can be split,
concatenated and padded), and the tiled form the `quant_gemm` kernels read
(TiledWeight, made from the row form once, when loading ends).

A weight W [N, K] (N output features, K input features) is stored as integer codes q
with one scale s (and optionally one min m) per group of `group_size` consecutive k of
a row, and means

    W[n, k] = s[n, k // group_size] * q[n, k] + m[n, k // group_size]   (m = 0 if absent)

computed in fp32. The last group of a row may be shorter (K need not be a multiple of
the group). Codes: bits 8: q in -128..127 (int8); bits 4: q in 0..15.

Row form (PackedWeight):
- bits 8: `qweight` int8 [N, K], row-major.
- bits 4: `qweight` uint8 [N, ceil(K / 32) * 16]. Row n is a sequence of 32-weight blocks
  of 16 bytes; byte j of block b holds the code of k = 32 b + j in its low nibble and of
  k = 32 b + 16 + j in its high nibble (GGUF Q4_0's order). Codes past K are 0.
- scales, mins: [N, ceil(K / group_size)].

Tiled form (TiledWeight), chosen for the CPU kernel's SIMD (like Marlin's for GPUs):
16 output features form a tile (the 16 fp32 lanes of a 512-bit vector), and a tile's
codes are a sequence of 64-byte chunks, one 512-bit load each, in which 32-bit lane l
(bytes 4 l .. 4 l + 3) belongs to output feature 16 t + l:
- bits 8: `qweight` int8 [ceil(N / 16), ceil(K / 32) * 512]; byte 64 c + 4 l + j of tile
  t holds the code of (n = 16 t + l, k = 4 c + j), j = 0..3: an int8 dot product of 4 k
  per lane (vpdpbusd), or 2 pairs (vdpbf16ps), needs no shuffle.
- bits 4: `qweight` uint8 [ceil(N / 16), ceil(K / 32) * 256]; byte 64 c + 4 l + j holds
  (n = 16 t + l, k = 8 c + j) in its low nibble and (n, k = 8 c + 4 + j) in its high
  nibble: one AND and one shift+AND give the two 4-k halves of a chunk.
- scales, mins: [ceil(N / 16), ceil(K / group_size), 16]: one group's scales of a tile
  are one 16-lane vector.
Codes, scales and mins past N (the last tile's padding) or past K are 0. N itself is
the output's column count (`out.size(1)`).

Scales and mins are float32 or float16; float16 where the checkpoint's scales are
float16 values (GGUF Q4_0/Q4_1/Q5_x/Q8_0, GPTQ, AWQ: exact, and half the bytes), float32
where they are products (GGUF K-quants: super-block scale times 6-bit sub-block scale is
not a float16 value). Symmetric int4 (GGUF Q4_0, GPTQ sym) is q - 8: scale s and min
-8 s, exact in both float types.
"""

from dataclasses import dataclass

import torch

BITS = (4, 8)
GROUP_SIZES = (16, 32, 64, 128, 256)
SCALE_DTYPES = (torch.float32, torch.float16)
INT4_BLOCK = 32  # k per 16-byte int4 block of the row form
TILE_N = 16  # output features per tile of the tiled form
TILE_K = 32  # the tiled form pads K to a multiple of this
CHUNK_BYTES = 64  # one chunk of the tiled form: a 512-bit load


def num_groups(in_features: int, group_size: int) -> int:
    return -(-in_features // group_size)


def packed_columns(in_features: int, bits: int) -> int:
    """Columns of the row form's `qweight` for a row of `in_features` weights."""
    if bits == 8:
        return in_features
    return -(-in_features // INT4_BLOCK) * (INT4_BLOCK // 2)


def num_tiles(out_features: int) -> int:
    return -(-out_features // TILE_N)


def tiled_columns(in_features: int, bits: int) -> int:
    """Columns (bytes per tile) of the tiled form's `qweight`."""
    return -(-in_features // TILE_K) * TILE_K * TILE_N * bits // 8


def chunk_k(bits: int) -> int:
    """k per chunk of the tiled form: 4 per 32-bit lane, twice that for int4 (nibbles)."""
    return 8 if bits == 4 else 4


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

    def tiled(self) -> "TiledWeight":
        """The same weight in the kernels' tiled form."""
        return TiledWeight(
            tile_codes(self.codes(), self.bits),
            tile_groups(self.scales),
            None if self.mins is None else tile_groups(self.mins),
            self.bits,
            self.group_size,
            self.in_features,
            self.out_features,
        )


@dataclass
class TiledWeight:
    """A quantised [out_features, in_features] weight in the tiled form quant_gemm reads."""

    qweight: torch.Tensor  # int8 | uint8 [ceil(N/16), ceil(K/32) * 16 * 32 * bits / 8]
    scales: torch.Tensor  # float32 | float16 [ceil(N/16), ceil(K / group_size), 16]
    mins: torch.Tensor | None  # like scales, or None (m = 0)
    bits: int
    group_size: int
    in_features: int
    out_features: int

    def rows(self) -> PackedWeight:
        """The row form (for the torch reference, embeddings and tests)."""
        n, k = self.out_features, self.in_features
        codes = untile_codes(self.qweight, self.bits, n, k)
        return PackedWeight(
            codes.to(torch.int8).contiguous() if self.bits == 8 else pack_int4(codes),
            untile_groups(self.scales, n),
            None if self.mins is None else untile_groups(self.mins, n),
            self.bits,
            self.group_size,
            k,
        )

    def dequantize(self) -> torch.Tensor:
        """W as float32 [N, K] (on the weight's device)."""
        n, k = self.out_features, self.in_features
        mins = None if self.mins is None else untile_groups(self.mins, n)
        codes = untile_codes(self.qweight, self.bits, n, k)
        return scale_codes(codes, untile_groups(self.scales, n), mins, self.group_size)

    def nbytes(self) -> int:
        t = [self.qweight, self.scales] + ([self.mins] if self.mins is not None else [])
        return sum(x.numel() * x.element_size() for x in t)


def tile_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int codes [N, K] (0..15 for bits 4, -128..127 for bits 8) -> the tiled form's
    qweight (see the module docstring)."""
    n, k = codes.shape
    t = num_tiles(n)
    kp = -(-k // TILE_K) * TILE_K
    c = torch.zeros(t * TILE_N, kp, dtype=torch.int32, device=codes.device)
    c[:n, :k] = codes.to(torch.int32)
    if bits == 8:
        v = c.view(t, TILE_N, kp // 4, 4).permute(0, 2, 1, 3)  # [tile, chunk, lane, j]
        return v.to(torch.int8).reshape(t, -1).contiguous()
    v = c.view(t, TILE_N, kp // 8, 2, 4).permute(0, 2, 1, 4, 3)  # [tile, chunk, lane, j, nibble]
    return (v[..., 0] | (v[..., 1] << 4)).to(torch.uint8).reshape(t, -1).contiguous()


def untile_codes(qweight: torch.Tensor, bits: int, out_features: int, in_features: int):
    """The tiled form's qweight -> int32 codes [N, K]."""
    t = qweight.shape[0]
    v = qweight.reshape(t, -1, TILE_N, 4).to(torch.int32)  # [tile, chunk, lane, j]
    if bits == 4:
        v = torch.stack((v & 0xF, v >> 4), dim=-2)  # [tile, chunk, lane, nibble, j]
    codes = v.transpose(1, 2).reshape(t * TILE_N, -1)
    return codes[:out_features, :in_features]


def tile_groups(s: torch.Tensor) -> torch.Tensor:
    """Scales or mins [N, groups] -> [ceil(N/16), groups, 16] (zeros past N)."""
    n, groups = s.shape
    t = num_tiles(n)
    padded = s.new_zeros(t * TILE_N, groups)
    padded[:n] = s
    return padded.view(t, TILE_N, groups).transpose(1, 2).contiguous()


def untile_groups(s: torch.Tensor, out_features: int) -> torch.Tensor:
    t, groups, _ = s.shape
    return s.transpose(1, 2).reshape(t * TILE_N, groups)[:out_features]


def gather_rows(w: TiledWeight, ids: torch.Tensor) -> torch.Tensor:
    """Rows `ids` of W as float32 [len(ids), K] (an embedding lookup on a tiled weight):
    the fp32 operations of `dequantize`, so the same values; the group scales broadcast
    instead of repeated when the groups tile the row (always, for GGUF)."""
    tile, lane = ids // TILE_N, ids % TILE_N
    n, k, gs = ids.shape[0], w.in_features, w.group_size
    v = w.qweight.view(w.qweight.shape[0], -1, TILE_N, 4)[tile, :, lane].to(torch.int32)
    if w.bits == 4:
        v = torch.stack((v & 0xF, v >> 4), dim=-2)  # [ids, chunk, nibble, j]: k in order
    q = v.reshape(n, -1)[:, :k].to(torch.float32)
    scales = w.scales[tile, :, lane].to(torch.float32)
    mins = None if w.mins is None else w.mins[tile, :, lane].to(torch.float32)
    if k % gs:
        return scale_codes(q, scales, mins, gs)
    out = q.view(n, k // gs, gs) * scales.unsqueeze(-1)
    if mins is not None:
        out = out + mins.unsqueeze(-1)
    return out.view(n, k)


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
    """The row form -> W [N, K] = scales * codes + mins per group, in float32."""
    return scale_codes(unpack_codes(qweight, bits, in_features), scales, mins, group_size)


def scale_codes(
    codes: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor | None, group_size: int
) -> torch.Tensor:
    """codes [N, K] and per-group scales (mins) [N, groups] -> W [N, K] in float32."""
    k = codes.shape[1]
    q = codes.to(torch.float32)
    s = scales.to(torch.float32).repeat_interleave(group_size, dim=1)[:, :k]
    w = q * s
    if mins is not None:
        w = w + mins.to(torch.float32).repeat_interleave(group_size, dim=1)[:, :k]
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
