"""Tensors for the fuzz cases. Hypothesis draws sizes, dtypes, layouts and one seed; the
values come from a torch generator seeded with it (drawing every element through
Hypothesis would be slow, and shrinking sizes and layouts is what finds the small
reproducer). Layouts are the awkward ones the ops accept: padded rows and padding in one
leading dimension (strided views, as vLLM's q/k slices of a packed qkv) and, for tensors
that are only read, rows broadcast with stride 0. Padding holds NaN, so a kernel that
reads it, or fails to write its output, shows up in the comparison."""

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
INPUT_LAYOUTS = ("contiguous", "padded", "broadcast")
OUTPUT_LAYOUTS = ("contiguous", "padded")
NONFINITE = (float("nan"), float("inf"), float("-inf"))

# Set on the views Maker.padded makes: their buffer outside the view is NaN until written.
NAN_PADDING = "_fuzz_nan_padding"

float_dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.integers(0, 2**31 - 1)


class Maker:
    """Builds a case's tensors from one seed; with nonfinite > 0, every input it makes
    gets that many NaN/inf/-inf values at random positions."""

    def __init__(self, seed: int, nonfinite: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.nonfinite = nonfinite

    def randn(self, shape, dtype=torch.float32, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=self.gen) * scale).to(dtype)

    def randint(self, low: int, high: int, shape, dtype=torch.int64) -> torch.Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.gen, dtype=dtype)

    def choice(self, n: int) -> int:
        return int(torch.randint(0, n, (), generator=self.gen))

    def input(self, shape, dtype, layout="contiguous", scale: float = 1.0) -> torch.Tensor:
        t = self.randn(shape, dtype, scale)
        self.plant_nonfinite(t)
        return self.in_layout(t, layout)

    def output(self, shape, dtype, layout="contiguous") -> torch.Tensor:
        """NaN-filled: whatever the op leaves unwritten stays NaN."""
        return self.in_layout(torch.full(tuple(shape), float("nan"), dtype=dtype), layout)

    def plant_nonfinite(self, t: torch.Tensor) -> None:
        if self.nonfinite == 0 or t.numel() == 0 or not t.is_floating_point():
            return
        for _ in range(self.nonfinite):  # any strides: index the logical positions
            where = torch.unravel_index(torch.tensor(self.choice(t.numel())), t.shape)
            t[where] = NONFINITE[self.choice(len(NONFINITE))]

    def in_layout(self, t: torch.Tensor, layout: str) -> torch.Tensor:
        # Empty tensors stay contiguous: the native row-layout check refuses some padded
        # (and some contiguous rank-4) empty tensors, a harmless quirk reported apart.
        if t.numel() == 0:
            return t
        if layout == "broadcast" and t.dim() >= 2 and t.shape[0] > 0:
            return t[:1].expand(t.shape)  # every row the first: stride 0
        if layout == "padded" and t.dim() >= 1:
            return self.padded(t)
        return t

    def padded(self, t: torch.Tensor, leading: int | None = None) -> torch.Tensor:
        """t's values in a NaN-filled buffer padded in its last dimension and in one leading
        dimension (`leading`, else a random one): at most two levels of row strides, which
        every row-wise op accepts."""
        pads = [0] * t.dim()
        pads[-1] = 1 + self.choice(3)
        if t.dim() >= 2:
            pads[self.choice(t.dim() - 1) if leading is None else leading] = 1 + self.choice(2)
        fill = float("nan") if t.is_floating_point() else 0
        buffer = torch.full([s + p for s, p in zip(t.shape, pads)], fill, dtype=t.dtype)
        view = buffer[tuple(slice(0, s) for s in t.shape)]
        view.copy_(t)
        if t.is_floating_point():
            setattr(view, NAN_PADDING, True)
        return view


def same_layout_copy(t):
    """A copy with t's strides (so layout rules see the same tensor); a broadcast tensor,
    which no op writes, is shared instead (a copy could not be written into)."""
    if not isinstance(t, torch.Tensor):
        return t
    if any(stride == 0 and n > 1 for stride, n in zip(t.stride(), t.shape)):
        return t
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device).copy_(t)


def describe(t) -> str:
    if not isinstance(t, torch.Tensor):
        return repr(t)
    dtype = str(t.dtype).removeprefix("torch.")
    return f"Tensor({list(t.shape)}, strides={list(t.stride())}, {dtype}, {t.device.type})"
