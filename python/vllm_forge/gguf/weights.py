"""GGUF tensors on their way into a layer, and the packed parts a layer keeps.

The model loader hands each GGUF tensor to vLLM's `load_weights` as a torch view of its
raw rows, tagged with its GGUF name, type and logical shape (`tag`), the way vLLM itself
tags tensors with a `shard_id`. vLLM routes it by name to a layer (q_proj to the `q` shard
of qkv_proj, ...), whose parameter's weight loader (`store_shard`) cuts out this rank's
rows or columns from the raw data, repacks them (`vllm_forge.quant.gguf.repack`: lossless)
and keeps them as one `Part` per shard. After loading, `finalize` concatenates the parts of
a merged layer into one when their formats agree (same bits, group, scale dtype, mins),
and otherwise keeps one part per shard: a GGUF file may mix types within a layer (Q4_K_M
stores some V projections as Q6_K).
"""

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard, cast

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from vllm_forge.quant.format import PackedWeight
from vllm_forge.quant.gguf import repack

# A part is stored on its layer as parameters named f"{PREFIX}{i}_{field}".
PREFIX = "gguf_part"

if TYPE_CHECKING:

    class TaggedTensor(torch.Tensor):
        """What `tag` returns: a plain torch.Tensor at run time, with these attributes."""

        gguf_name: str
        gguf_type: GGMLQuantizationType
        gguf_shape: tuple[int, ...]


def tag(
    data: np.ndarray, name: str, tensor_type: GGMLQuantizationType, shape: tuple[int, ...]
) -> "TaggedTensor":
    """The raw GGUF data as a torch tensor (no copy) carrying what a layer needs to
    repack it. `shape` is the logical torch shape, (N, K) for a matrix."""
    with warnings.catch_warnings():  # a read-only memory map; nothing writes to it
        warnings.simplefilter("ignore", UserWarning)
        tensor = cast("TaggedTensor", torch.from_numpy(data))
    tensor.gguf_name = name
    tensor.gguf_type = GGMLQuantizationType(tensor_type)
    tensor.gguf_shape = tuple(int(d) for d in shape)
    return tensor


def is_tagged(tensor: torch.Tensor) -> "TypeGuard[TaggedTensor]":
    return hasattr(tensor, "gguf_type")


@dataclass
class Part:
    """Rows [start, start + rows) of a layer's (local) output features."""

    start: int
    weight: PackedWeight | torch.Tensor  # a float weight [rows, K] for F32/F16/BF16

    @property
    def rows(self) -> int:
        w = self.weight
        return w.out_features if isinstance(w, PackedWeight) else w.shape[0]


def read(
    tensor: "TaggedTensor",
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    float_dtype: torch.dtype | None = None,
) -> PackedWeight | torch.Tensor:
    """Rows [r0, r1) and columns [k0, k1) of a tagged GGUF matrix, repacked.

    Cuts are made on the raw data, before repacking; a column cut must fall on a block
    boundary of the tensor's type. Float tensors come back in `float_dtype`."""
    name, qtype, shape = tensor.gguf_name, tensor.gguf_type, tensor.gguf_shape
    if len(shape) != 2:
        raise ValueError(
            f"forge_gguf: GGUF tensor {name!r} ({qtype.name}) has shape "
            f"{list(shape)}; a linear or embedding weight must be 2-D"
        )
    n, k = shape
    raw = tensor.numpy()
    r0, r1 = rows if rows is not None else (0, n)
    k0, k1 = cols if cols is not None else (0, k)
    raw = raw[r0:r1]
    if (k0, k1) != (0, k):
        block, type_size = GGML_QUANT_SIZES[qtype]
        if raw.dtype == np.uint8:  # columns are bytes of blocks
            if k0 % block or k1 % block:
                raise ValueError(
                    f"forge_gguf: GGUF tensor {name!r} ({qtype.name}) cannot be split at "
                    f"columns {k0}..{k1}: not on its {block}-weight block boundaries (use "
                    f"fewer tensor-parallel ranks)"
                )
            raw = raw[:, k0 // block * type_size : k1 // block * type_size]
        else:
            raw = raw[:, k0:k1]
    weight = repack(name, qtype, raw, (r1 - r0, k1 - k0))
    if isinstance(weight, torch.Tensor) and float_dtype is not None:
        weight = weight.to(float_dtype)
    return weight


def pad_rows(weight: PackedWeight | torch.Tensor, rows: int) -> PackedWeight | torch.Tensor:
    """`weight` with zero rows appended up to `rows` (a padded vocabulary)."""

    def pad(t: torch.Tensor) -> torch.Tensor:
        if t.shape[0] == rows:
            return t
        return torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])])

    if isinstance(weight, torch.Tensor):
        return pad(weight)
    mins = None if weight.mins is None else pad(weight.mins)
    return PackedWeight(
        pad(weight.qweight),
        pad(weight.scales),
        mins,
        weight.bits,
        weight.group_size,
        weight.in_features,
    )


# A layer's GGUF bookkeeping (gguf_pending: dict[int, Part] by start row; gguf_parts:
# tuple[PartLayout, ...], None until finalized) is plain data, which torch.nn.Module's
# typed __getattr__/__setattr__ (tensors and modules only) do not describe: it is read
# into typed locals with getattr and written with setattr.
def store_shard(layer: torch.nn.Module, part: Part) -> None:
    pending: dict[int, Part] = getattr(layer, "gguf_pending")
    pending[part.start] = part


def _format(w: PackedWeight | torch.Tensor):
    if isinstance(w, torch.Tensor):
        return ("float", w.dtype, w.shape[1])
    return (w.bits, w.group_size, w.scales.dtype, w.mins is None, w.in_features)


def _concat(parts: list[Part]) -> Part:
    # merge() groups parts of one _format: all float, or all packed with or without mins.
    floats = [p.weight for p in parts if isinstance(p.weight, torch.Tensor)]
    if floats:
        return Part(parts[0].start, torch.cat(floats))
    ws = [p.weight for p in parts if isinstance(p.weight, PackedWeight)]
    mins = [w.mins for w in ws if w.mins is not None]
    return Part(
        parts[0].start,
        PackedWeight(
            torch.cat([w.qweight for w in ws]),
            torch.cat([w.scales for w in ws]),
            torch.cat(mins) if mins else None,
            ws[0].bits,
            ws[0].group_size,
            ws[0].in_features,
        ),
    )


def merge(parts: list[Part]) -> list[Part]:
    """Adjacent parts of one format, concatenated along the rows."""
    merged: list[list[Part]] = []
    for part in sorted(parts, key=lambda p: p.start):
        if merged and _format(merged[-1][-1].weight) == _format(part.weight):
            merged[-1].append(part)
        else:
            merged.append([part])
    return [group[0] if len(group) == 1 else _concat(group) for group in merged]


@dataclass(frozen=True)
class PartLayout:
    """How one part is stored on its layer: parameter names and static format."""

    start: int
    rows: int
    qweight: str | None  # None: a float part, in `weight`
    scales: str | None
    mins: str | None
    weight: str | None
    bits: int = 0
    group_size: int = 0


def finalize(layer: torch.nn.Module, expected_rows: int, what: str) -> None:
    """Turn the parts loaded into `layer` into its parameters (once; idempotent)."""
    if getattr(layer, "gguf_parts", None) is not None:
        return
    pending: dict[int, Part] = getattr(layer, "gguf_pending")
    parts = merge(list(pending.values()))
    covered = 0
    for part in parts:
        if part.start != covered:
            break
        covered += part.rows
    if covered != expected_rows:
        loaded = [(p.start, p.start + p.rows) for p in parts]
        raise ValueError(
            f"forge_gguf: {what}: the GGUF file filled output rows {loaded} "
            f"of {expected_rows}; some tensors are missing or overlap"
        )
    layouts = []
    for i, part in enumerate(parts):
        names: dict[str, str] = {}
        w = part.weight
        fields: dict[str, torch.Tensor | None]
        if isinstance(w, torch.Tensor):
            fields = {"weight": w}
        else:  # the kernels' tiled form, made once the rows are all here
            tiled = w.tiled()
            fields = {"qweight": tiled.qweight, "scales": tiled.scales, "mins": tiled.mins}
        for field, t in fields.items():
            if t is None:
                continue
            names[field] = f"{PREFIX}{i}_{field}"
            layer.register_parameter(names[field], torch.nn.Parameter(t, requires_grad=False))
        bits, group_size = (w.bits, w.group_size) if isinstance(w, PackedWeight) else (0, 0)
        layouts.append(
            PartLayout(
                part.start,
                part.rows,
                names.get("qweight"),
                names.get("scales"),
                names.get("mins"),
                names.get("weight"),
                bits,
                group_size,
            )
        )
    setattr(layer, "gguf_parts", tuple(layouts))
    setattr(layer, "gguf_pending", {})


def share(layer: torch.nn.Module, source: torch.nn.Module) -> None:
    """Give `layer` the finalized parts of `source` (a tied LM head), without copies."""
    parts: tuple[PartLayout, ...] = getattr(source, "gguf_parts")
    for part in parts:
        for name in (part.qweight, part.scales, part.mins, part.weight):
            if name is not None:
                layer.register_parameter(name, getattr(source, name))
    setattr(layer, "gguf_parts", parts)
    setattr(layer, "gguf_pending", {})
